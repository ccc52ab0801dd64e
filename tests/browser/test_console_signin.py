"""Sign-in and CSRF in a real browser: a wrong password is refused with an error on the page;
a state change without the CSRF header is refused, with it allowed; pages need a session."""

from __future__ import annotations

from playwright.async_api import Page, expect

from gateway.rig.console_pages import sign_in
from gateway.rig.console_stack import PASSWORD, ConsoleStack


async def test_a_wrong_password_shows_an_error_and_the_right_one_signs_in(
        page: Page, stack: ConsoleStack) -> None:
    await page.goto("/console/calls")
    await expect(page).to_have_url(f"{stack.base}/console/signin?next=%2Fconsole%2Fcalls")
    await page.fill("#password", "not the password")
    await page.click("button[type=submit]")
    await expect(page.locator("#signin-error")).to_have_text("Wrong password.")
    await expect(page.locator("#nav")).to_be_hidden()

    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit]")
    await expect(page.locator("h1")).to_have_text("Calls")  # back where it was going
    await expect(page.locator("#nav")).to_be_visible()


async def test_a_state_change_without_the_csrf_header_is_refused(page: Page) -> None:
    await sign_in(page)
    await expect(page.locator("#start")).to_be_visible()
    statuses = await page.evaluate("""async () => {
        const session = await (await fetch('/console/api/session')).json();
        const without = await fetch('/console/api/session', {method: 'DELETE'});
        const wrong = await fetch('/console/api/session',
            {method: 'DELETE', headers: {'X-CSRF-Token': 'forged'}});
        const still = await (await fetch('/console/api/session')).json();
        const right = await fetch('/console/api/session',
            {method: 'DELETE', headers: {'X-CSRF-Token': session.csrf}});
        const after = await fetch('/console/api/agents');
        return [without.status, wrong.status, still.signed_in, right.ok, after.status];
    }""")
    assert statuses == [403, 403, True, True, 401]
    # Signed out: the pages send the operator back to sign in.
    await page.goto("/console/live")
    await expect(page.locator("#password")).to_be_visible()
