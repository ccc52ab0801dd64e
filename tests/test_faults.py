import pytest

from gateway.faults import LIVE_RETRY, REST_RETRY, Fault, RetryPolicy, classify_close


@pytest.mark.parametrize(("code", "reason", "fault", "retry"), [
    (1007, "API key not valid. Please pass a valid API key.", Fault.CREDENTIALS, False),
    (1007, "Request contains an invalid argument.", Fault.CREDENTIALS, False),
    (1008, "models/x is not found for API version v1beta", Fault.MODEL, False),
    (1008, "BidiGenerateContent session not found", Fault.TRANSIENT, True),
    (1011, "You exceeded your current quota, please check your plan and billing details.",
     Fault.QUOTA, False),
    (1011, "Resource has been exhausted (e.g. check quota).", Fault.QUOTA, False),
    (1011, "Internal error occurred.", Fault.TRANSIENT, True),
    (1011, "Deadline expired before operation could complete.", Fault.TRANSIENT, True),
    (1011, "The service is currently unavailable.", Fault.TRANSIENT, True),
    (1006, "", Fault.TRANSIENT, True),
])
def test_close_codes_are_classified_by_code_and_reason(code: int, reason: str, fault: Fault,
                                                       retry: bool) -> None:
    decision = classify_close(code, reason)
    assert decision.fault is fault
    assert decision.retry is retry


def test_backoff_grows_and_is_capped() -> None:
    assert [LIVE_RETRY.delay_s(n) for n in (1, 2, 3, 4, 5, 6)] == [0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert [REST_RETRY.delay_s(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]


def test_a_retry_policy_needs_an_attempt() -> None:
    with pytest.raises(ValueError, match="at least one attempt"):
        RetryPolicy(attempts=0, base_s=0.1, cap_s=1.0)
