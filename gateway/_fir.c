/* The streaming polyphase FIR behind gateway.audio.Resampler, compiled.
 *
 * Why C: the numpy path costs about 7 us per 20 ms frame in a tight loop but three to four
 * times that inside the serving process, where a dozen small numpy calls per frame run with
 * cold caches between socket reads (py-spy put it at 16 % of the gateway's CPU). One call
 * into a short loop does the same work with nothing around it.
 *
 * The filter and the arithmetic are the Python module's: coefficients are multiples of
 * 2**-24 and inputs are 16-bit integers, so every product and partial sum is exact in a
 * double. The summation order cannot change a result, and this kernel's output is
 * bit-identical to the numpy path (tests/test_audio.py holds both to it).
 *
 * Output n reads inputs (n*M)//L - k, k = 0..taps-1, with phase (n*M) % L, and is emitted as
 * soon as its newest input has arrived; inputs before the first are zero.
 *
 * Only non-zero taps are kept. The filters cut at the lower rate's Nyquist, so the sinc's
 * zero crossings fall on taps: for 8 -> 16 kHz one phase is a single tap (half the work
 * disappears), for 24 -> 8 kHz a third of the taps are zero.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    PyObject_HEAD
    int up;          /* L */
    int down;        /* M */
    Py_ssize_t taps;
    double *coef;    /* phase p's non-zero taps at coef[start[p] .. start[p+1]) */
    Py_ssize_t *pos; /* where each one's input sits in the window of taps inputs */
    Py_ssize_t *start;
    double *work;    /* taps-1 samples of history, then the chunk being processed */
    double *lanes;   /* work split into M interleaved lanes, so every tap reads a run */
    double *acc;     /* the sums of one class of outputs */
    Py_ssize_t cap;  /* chunk samples the buffers hold */
    int phase;       /* (n*M) % L of the next output */
    Py_ssize_t next; /* its newest input, counted from the start of the next chunk */
} Fir;

static void
fir_free(Fir *self)
{
    PyMem_Free(self->coef);
    PyMem_Free(self->pos);
    PyMem_Free(self->start);
    PyMem_Free(self->work);
    PyMem_Free(self->lanes);
    PyMem_Free(self->acc);
    self->coef = self->work = self->lanes = self->acc = NULL;
    self->pos = self->start = NULL;
    self->cap = 0;
}

static void
Fir_dealloc(Fir *self)
{
    fir_free(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Fir.__new__ without __init__ (or an __init__ that ran out of memory) leaves no buffers:
 * refuse, rather than read through NULL and take every call in the process down. */
static int
fir_ready(Fir *self)
{
    if (self->work != NULL)
        return 0;
    PyErr_SetString(PyExc_RuntimeError, "Fir is not initialised");
    return -1;
}

static int
fir_grow(double **buf, Py_ssize_t n)
{
    double *p = PyMem_Realloc(*buf, (size_t)n * sizeof(double));
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *buf = p;
    return 0;
}

static int
fir_reserve(Fir *self, Py_ssize_t n)
{
    if (n <= self->cap)
        return 0;
    Py_ssize_t cap = self->cap * 2 > n ? self->cap * 2 : n;
    Py_ssize_t hist = self->taps - 1;
    /* A class of outputs has at most len/M + 2 members (see Fir_process); one spare.
     * Lanes are only read when M > 1. */
    if (fir_grow(&self->work, hist + cap) < 0 || fir_grow(&self->acc, cap / self->down + 3) < 0 ||
        (self->down > 1 && fir_grow(&self->lanes, hist + cap + self->down) < 0))
        return -1;
    self->cap = cap;
    return 0;
}

static void
fir_clear(Fir *self)
{
    memset(self->work, 0, (size_t)(self->taps - 1) * sizeof(double));
    self->phase = 0;
    self->next = 0;
}

/* Fir(coef, up, down): coef holds up * taps float64 values, row p being the phase-p taps
 * poly[p][k] in order of k. */
static int
Fir_init(Fir *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"coef", "up", "down", NULL};
    Py_buffer view;
    int up, down;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*ii", kwlist, &view, &up, &down))
        return -1;
    Py_ssize_t values = view.len / (Py_ssize_t)sizeof(double);
    if (up <= 0 || down <= 0 || view.len % (Py_ssize_t)sizeof(double) || values == 0 ||
        values % up) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "coef must hold up * taps float64 values");
        return -1;
    }
    Py_ssize_t taps = values / up;
    double *coef = PyMem_Malloc((size_t)values * sizeof(double));
    Py_ssize_t *pos = PyMem_Malloc((size_t)values * sizeof(Py_ssize_t));
    Py_ssize_t *start = PyMem_Malloc((size_t)(up + 1) * sizeof(Py_ssize_t));
    if (coef == NULL || pos == NULL || start == NULL) {
        PyMem_Free(coef);
        PyMem_Free(pos);
        PyMem_Free(start);
        PyBuffer_Release(&view);
        PyErr_NoMemory();
        return -1;
    }
    const double *src = view.buf;
    Py_ssize_t kept = 0;
    for (Py_ssize_t p = 0; p < up; p++) {
        start[p] = kept;
        for (Py_ssize_t k = taps - 1; k >= 0; k--) {
            /* Tap k reads input at - k, which sits at window offset taps - 1 - k. */
            if (src[p * taps + k] != 0.0) {
                coef[kept] = src[p * taps + k];
                pos[kept] = taps - 1 - k;
                kept++;
            }
        }
    }
    start[up] = kept;
    PyBuffer_Release(&view);
    fir_free(self);
    self->coef = coef;
    self->pos = pos;
    self->start = start;
    self->up = up;
    self->down = down;
    self->taps = taps;
    /* Sized by the first chunk, then doubled as needed: a call's resamplers see 20 ms
     * frames and 80 ms replies, and 200 calls would hold 34 MB at a fixed 4096. */
    if (fir_reserve(self, 1) < 0)
        return -1;
    fir_clear(self);
    return 0;
}

/* acc[t] += c * x[t] over a run: the loop compilers vectorise, and the whole filter's work.
 * Where the toolchain can, x86-64 gets an AVX2 build of it chosen at load time. */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__)
__attribute__((target_clones("arch=haswell", "default")))
#endif
static void
mac(double *restrict acc, const double *restrict x, Py_ssize_t n, double c)
{
    for (Py_ssize_t t = 0; t < n; t++)
        acc[t] += c * x[t];
}

static PyObject *
Fir_process(Fir *self, PyObject *arg)
{
    Py_buffer view;
    if (fir_ready(self) < 0 || PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (view.len % 2) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "PCM16 needs an even number of bytes");
        return NULL;
    }
    Py_ssize_t len = view.len / 2;
    if (fir_reserve(self, len) < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    const Py_ssize_t hist = self->taps - 1, total = hist + len;
    double *x = self->work + hist;
    const unsigned char *in = view.buf;
    for (Py_ssize_t i = 0; i < len; i++)
        x[i] = (double)(int16_t)(uint16_t)(in[2 * i] | (in[2 * i + 1] << 8));
    PyBuffer_Release(&view);

    /* Outputs whose newest input is inside this chunk. Output j after the next one has
     * phase + j*M in units of 1/L input, and is due while (phase + j*M)//L < len - next. */
    const int up = self->up, down = self->down;
    Py_ssize_t count = 0;
    if (self->next < len) {
        int64_t room = (int64_t)(len - self->next) * up - self->phase;
        count = (Py_ssize_t)((room - 1) / down + 1);
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, count * 2);
    if (out == NULL)
        return NULL;
    unsigned char *o = (unsigned char *)PyBytes_AS_STRING(out);

    /* Lane q holds work[q], work[q + M], ...: input i + t*M for t = 0, 1, ... is one run. */
    const double *lanes = self->work;
    Py_ssize_t lane_len = total;
    if (down > 1) {
        lane_len = (total + down - 1) / down;
        double *l = self->lanes;
        for (int q = 0; q < down; q++)
            for (Py_ssize_t i = q, t = 0; i < total; i += down, t++)
                l[q * lane_len + t] = self->work[i];
        lanes = l;
    }

    /* Outputs j and j + L share a phase and sit M inputs apart: each of the L classes is a
     * plain convolution of one lane run with that phase's taps. */
    for (int r = 0; r < up && r < count; r++) {
        int64_t step = (int64_t)self->phase + (int64_t)r * down;
        int p = (int)(step % up);
        Py_ssize_t at = self->next + (Py_ssize_t)(step / up); /* window start in work */
        Py_ssize_t n = (count - r + up - 1) / up;
        double *acc = self->acc;
        memset(acc, 0, (size_t)n * sizeof(double));
        for (Py_ssize_t m = self->start[p]; m < self->start[p + 1]; m++) {
            Py_ssize_t i = at + self->pos[m];
            mac(acc, lanes + (i % down) * lane_len + i / down, n, self->coef[m]);
        }
        for (Py_ssize_t t = 0; t < n; t++) {
            /* lrint rounds half to even, as numpy's rint does. */
            long y = lrint(acc[t]);
            y = y > 32767 ? 32767 : y < -32768 ? -32768 : y;
            uint16_t v = (uint16_t)(int16_t)y;
            Py_ssize_t j = r + t * up;
            o[2 * j] = (unsigned char)(v & 0xff);
            o[2 * j + 1] = (unsigned char)(v >> 8);
        }
    }
    int64_t moved = (int64_t)self->phase + (int64_t)count * down;
    self->phase = (int)(moved % up);
    self->next = self->next + (Py_ssize_t)(moved / up) - len;
    /* The last taps-1 inputs, some of them older history when the chunk is short. */
    memmove(self->work, self->work + len, (size_t)hist * sizeof(double));
    return out;
}

static PyObject *
Fir_reset(Fir *self, PyObject *Py_UNUSED(ignored))
{
    if (fir_ready(self) < 0)
        return NULL;
    fir_clear(self);
    Py_RETURN_NONE;
}

static PyMethodDef Fir_methods[] = {
    {"process", (PyCFunction)Fir_process, METH_O,
     "process(pcm16) -> bytes: every output sample the inputs so far allow."},
    {"reset", (PyCFunction)Fir_reset, METH_NOARGS, "Forget all history."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject FirType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gateway._fir.Fir",
    .tp_doc = "Streaming polyphase FIR resampler over PCM16, exact in double precision.",
    .tp_basicsize = sizeof(Fir),
    .tp_itemsize = 0,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Fir_init,
    .tp_dealloc = (destructor)Fir_dealloc,
    .tp_methods = Fir_methods,
};

static struct PyModuleDef fir_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "gateway._fir",
    .m_doc = "Compiled kernel of gateway.audio.Resampler.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__fir(void)
{
    if (PyType_Ready(&FirType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&fir_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&FirType);
    if (PyModule_AddObject(m, "Fir", (PyObject *)&FirType) < 0) {
        Py_DECREF(&FirType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
