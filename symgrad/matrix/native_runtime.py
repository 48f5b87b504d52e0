"""The C runtime of :mod:`symgrad.matrix.native`: strided views and the helpers its programs call.

A value is an ``sg_m``: a pointer, rows, columns, the two strides in entries, and the NumPy
array holding the memory (``own``; NULL for a constant). Helpers that allocate return 0 when
done, -1 on an error (a Python exception is set) and 1 when an IEEE flag was already raised
before a NumPy call (the entry then passes the call to the NumPy function, which gives NumPy's
warnings: NumPy clears the flags itself). Products with at most ``small`` multiply-adds are C
loops, larger ones NumPy's BLAS ``matmul`` on views of the operands.

>>> "static int sg_gram(" in RUNTIME.replace("__attribute__((noinline)) ", "")
True
"""

__all__ = ["RUNTIME"]

#: Included by every program after Python's and NumPy's headers, the C target's prelude and the
#: float entry's runtime (``SG_RAISED``, ``sg_tuple``)
RUNTIME = r"""
typedef struct { double *p; npy_intp r, c, rs, cs; PyObject *own; } sg_m;
/* the next loop's iterations write entries that no other iteration reads */
#if defined(__clang__)
#define SG_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define SG_IVDEP _Pragma("GCC ivdep")
#else
#define SG_IVDEP
#endif
#define SG_AT(m, i, j) ((m).p[(i) * (m).rs + (j) * (m).cs])

static int sg_usable(PyArrayObject *a) {
    return PyArray_NDIM(a) == 2 && PyArray_TYPE(a) == NPY_DOUBLE && PyArray_ISALIGNED(a)
        && PyArray_ISNOTSWAPPED(a);
}
static sg_m sg_arg(PyArrayObject *a) {
    sg_m m = {(double *)PyArray_DATA(a), PyArray_DIM(a, 0), PyArray_DIM(a, 1),
              PyArray_STRIDE(a, 0) / 8, PyArray_STRIDE(a, 1) / 8, (PyObject *)a};
    return m;
}
static sg_m sg_bcast(sg_m a, npy_intp r, npy_intp c) {
    sg_m m = {a.p, r, c, a.r == 1 ? 0 : a.rs, a.c == 1 ? 0 : a.cs, a.own};
    return m;
}
/* a new C-ordered r x c array (zeroed if asked) held by *slot, viewed by *m */
static PyObject *sg_alloc(npy_intp r, npy_intp c, sg_m *m, PyObject **slot, int zero) {
    npy_intp dims[2] = {r, c};
    PyObject *a = zero ? PyArray_ZEROS(2, dims, NPY_DOUBLE, 0)
                       : PyArray_SimpleNew(2, dims, NPY_DOUBLE);
    if (a != NULL) {
        sg_m v = {(double *)PyArray_DATA((PyArrayObject *)a), r, c, c, 1, a};
        *m = v;
        *slot = a;
    }
    return a;
}
static PyObject *sg_new(npy_intp r, npy_intp c, sg_m *m, PyObject **slot) {
    return sg_alloc(r, c, m, slot, 0);
}
static int sg_fresh(sg_m m) {  /* m is its owner, a C-ordered 2-d array, entry for entry */
    PyArrayObject *a = (PyArrayObject *)m.own;
    return a != NULL && m.rs == m.c && m.cs == 1 && m.p == (double *)PyArray_DATA(a)
        && PyArray_NDIM(a) == 2 && PyArray_DIM(a, 0) == m.r && PyArray_DIM(a, 1) == m.c
        && PyArray_IS_C_CONTIGUOUS(a);
}
static int sg_copy(sg_m a, sg_m *o, PyObject **slot) {
    if (sg_new(a.r, a.c, o, slot) == NULL) return -1;
    for (npy_intp i = 0; i < a.r; ++i)
        for (npy_intp j = 0; j < a.c; ++j) o->p[i * a.c + j] = SG_AT(a, i, j);
    return 0;
}
/* a NumPy array of m's entries (a view of its owner, or a copy of a constant): new reference */
static PyObject *sg_array(sg_m m) {
    if (m.own == NULL) {
        sg_m c;
        PyObject *slot = NULL;
        return sg_copy(m, &c, &slot) < 0 ? NULL : slot;
    }
    if (sg_fresh(m)) { Py_INCREF(m.own); return m.own; }
    npy_intp dims[2] = {m.r, m.c}, strides[2] = {m.rs * 8, m.cs * 8};
    PyObject *v = PyArray_New(&PyArray_Type, 2, dims, NPY_DOUBLE, strides, m.p, 0,
                              NPY_ARRAY_ALIGNED, NULL);
    if (v == NULL) return NULL;
    Py_INCREF(m.own);
    if (PyArray_SetBaseObject((PyArrayObject *)v, m.own) < 0) { Py_DECREF(v); return NULL; }
    return v;
}
/* an output: the array itself when it is one of the program's own, else a copy */
static PyObject *sg_out(sg_m m) {
    if (sg_fresh(m) && m.own != NULL && PyArray_CHKFLAGS((PyArrayObject *)m.own,
                                                        NPY_ARRAY_WRITEABLE | NPY_ARRAY_OWNDATA)) {
        Py_INCREF(m.own);
        return m.own;
    }
    sg_m c;
    PyObject *slot = NULL;
    return sg_copy(m, &c, &slot) < 0 ? NULL : slot;
}
static PyObject *sg_float(double v) {
    PyObject *o = PyArrayScalar_New(Double);
    if (o != NULL) PyArrayScalar_ASSIGN(o, Double, v);
    return o;
}
/* a NumPy product of two views (BLAS); 1 when an IEEE flag is already raised (the fallback
   then answers: NumPy clears the flags) */
static int sg_numpy_mm(sg_m a, sg_m b, sg_m *o, PyObject **slot) {
    if (SG_RAISED()) return 1;
    PyObject *x = sg_array(a);
    PyObject *y = x != NULL ? sg_array(b) : NULL;
    PyObject *p = y != NULL ? PyNumber_MatrixMultiply(x, y) : NULL;
    Py_XDECREF(x);
    Py_XDECREF(y);
    if (p == NULL) return -1;
    *slot = p;
    PyArrayObject *pa = (PyArrayObject *)p;
    sg_m v = {(double *)PyArray_DATA(pa), a.r, b.c, PyArray_STRIDE(pa, 0) / 8,
              PyArray_STRIDE(pa, 1) / 8, p};
    *o = v;
    return 0;
}
/* a b in C when it has at most small multiply-adds (small_mv for a matrix times a column),
   else through NumPy's BLAS */
__attribute__((noinline)) static int sg_mm(sg_m a, sg_m b, sg_m *o, PyObject **slot,
                                           npy_intp small, npy_intp small_mv) {
    const npy_intp r = a.r, n = a.c, c = b.c;
    if (r * n * c > (c == 1 ? small_mv : small)) return sg_numpy_mm(a, b, o, slot);
    if (sg_new(r, c, o, slot) == NULL) return -1;
    double *out = o->p;
    if (c == 1) {  /* matrix-vector: four partial sums (a dependency chain of adds is slow) */
        const npy_intp as = a.cs, bs = b.rs;
        for (npy_intp i = 0; i < r; ++i) {
            const double *ai = a.p + i * a.rs, *bp = b.p;
            double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
            npy_intp l = 0;
            if (as == 1 && bs == 1) {
                for (; l + 4 <= n; l += 4) {
                    s0 += ai[l] * bp[l];
                    s1 += ai[l + 1] * bp[l + 1];
                    s2 += ai[l + 2] * bp[l + 2];
                    s3 += ai[l + 3] * bp[l + 3];
                }
            }
            for (; l + 4 <= n; l += 4) {
                s0 += ai[l * as] * bp[l * bs];
                s1 += ai[(l + 1) * as] * bp[(l + 1) * bs];
                s2 += ai[(l + 2) * as] * bp[(l + 2) * bs];
                s3 += ai[(l + 3) * as] * bp[(l + 3) * bs];
            }
            for (; l < n; ++l) s0 += ai[l * as] * bp[l * bs];
            out[i] = (s0 + s1) + (s2 + s3);
        }
        return 0;
    }
    for (npy_intp i = 0; i < r; ++i) {
        double *row = out + i * c;
        for (npy_intp j = 0; j < c; ++j) row[j] = 0.0;
        for (npy_intp l = 0; l < n; ++l) {
            const double x = SG_AT(a, i, l);
            const double *bl = b.p + l * b.rs;
            if (b.cs == 1) {
                SG_IVDEP
                for (npy_intp j = 0; j < c; ++j) row[j] += x * bl[j];
            } else {
                for (npy_intp j = 0; j < c; ++j) row[j] += x * bl[j * b.cs];
            }
        }
    }
    return 0;
}
/* out = w x (m entries of x, stride cs); its own function: vectorised without aliasing doubts */
__attribute__((noinline)) static void sg_scaled_row(double *restrict out,
                                                    const double *restrict x, npy_intp cs,
                                                    double w, npy_intp m) {
    if (cs == 1)
        for (npy_intp j = 0; j < m; ++j) out[j] = w * x[j];
    else
        for (npy_intp j = 0; j < m; ++j) out[j] = w * x[j * cs];
}
/* x^T diag(s) x for x (n, m), s (n, 1) */
__attribute__((noinline)) static int sg_gram(sg_m x, sg_m s, sg_m *o, PyObject **slot,
                                             npy_intp small) {
    const npy_intp n = x.r, m = x.c;
    if (m * m * n <= small) {  /* x^T (s x), as NumPy's general product */
        sg_m w;
        PyObject *ws = NULL;
        if (sg_new(n, m, &w, &ws) == NULL) return -1;
        for (npy_intp k = 0; k < n; ++k)
            sg_scaled_row(w.p + k * m, x.p + k * x.rs, x.cs, SG_AT(s, k, 0), m);
        sg_m t = {x.p, x.c, x.r, x.cs, x.rs, x.own};
        int rc = sg_mm(t, w, o, slot, small, small);
        Py_DECREF(ws);
        return rc;
    }
    /* weights >= 0: z = diag(sqrt(s)) x and z^T z (BLAS syrk); else x^T (s x). isgreaterequal
       is false for NaN without raising the invalid flag */
    int nonneg = 1;
    for (npy_intp k = 0; k < n && nonneg; ++k) nonneg = isgreaterequal(SG_AT(s, k, 0), 0.0);
    sg_m z;
    PyObject *zs = NULL;
    if (sg_new(n, m, &z, &zs) == NULL) return -1;
    for (npy_intp k = 0; k < n; ++k) {
        const double w = nonneg ? sqrt(SG_AT(s, k, 0)) : SG_AT(s, k, 0);
        sg_scaled_row(z.p + k * m, x.p + k * x.rs, x.cs, w, m);
    }
    sg_m lhs = nonneg ? z : x;
    sg_m t = {lhs.p, lhs.c, lhs.r, lhs.cs, lhs.rs, lhs.own};
    int rc = sg_numpy_mm(t, z, o, slot);
    Py_DECREF(zs);
    return rc;
}
/* rows (cols = 0) or columns (cols = 1) of a scaled by the column d */
static int sg_scale(sg_m a, sg_m d, int cols, sg_m *o, PyObject **slot) {
    if (sg_new(a.r, a.c, o, slot) == NULL) return -1;
    for (npy_intp i = 0; i < a.r; ++i)
        for (npy_intp j = 0; j < a.c; ++j)
            o->p[i * a.c + j] = cols ? SG_AT(a, i, j) * SG_AT(d, j, 0)
                                     : SG_AT(d, i, 0) * SG_AT(a, i, j);
    return 0;
}
static void sg_scale_inplace(sg_m a, double c) {
    for (npy_intp i = 0; i < a.r; ++i)
        for (npy_intp j = 0; j < a.c; ++j) a.p[i * a.rs + j * a.cs] *= c;
}
static int sg_eye(npy_intp n, sg_m *o, PyObject **slot) {
    if (sg_alloc(n, n, o, slot, 1) == NULL) return -1;
    for (npy_intp i = 0; i < n; ++i) o->p[i * n + i] = 1.0;
    return 0;
}
static int sg_diag(sg_m d, sg_m *o, PyObject **slot) {
    const npy_intp n = d.r * d.c;
    if (sg_alloc(n, n, o, slot, 1) == NULL) return -1;
    for (npy_intp i = 0; i < n; ++i) o->p[i * n + i] = d.c == 1 ? SG_AT(d, i, 0) : SG_AT(d, 0, i);
    return 0;
}
/* I_n (x) m (first) or m (x) I_n: only the copies of m's entries are written */
static int sg_kron_eye(npy_intp n, sg_m m, int first, sg_m *o, PyObject **slot) {
    const npy_intp p = m.r, q = m.c, cols = n * q;
    if (sg_alloc(n * p, n * q, o, slot, 1) == NULL) return -1;
    for (npy_intp i = 0; i < n; ++i)
        for (npy_intp a = 0; a < p; ++a)
            for (npy_intp b = 0; b < q; ++b) {
                if (first) o->p[(i * p + a) * cols + i * q + b] = SG_AT(m, a, b);
                else o->p[(a * n + i) * cols + b * n + i] = SG_AT(m, a, b);
            }
    return 0;
}
static int sg_kron(sg_m a, sg_m b, sg_m *o, PyObject **slot) {
    const npy_intp cols = a.c * b.c;
    if (sg_new(a.r * b.r, cols, o, slot) == NULL) return -1;
    for (npy_intp i = 0; i < a.r; ++i)
        for (npy_intp k = 0; k < b.r; ++k)
            for (npy_intp j = 0; j < a.c; ++j)
                for (npy_intp l = 0; l < b.c; ++l)
                    o->p[(i * b.r + k) * cols + j * b.c + l] = SG_AT(a, i, j) * SG_AT(b, k, l);
    return 0;
}
static int sg_sum_axis(sg_m a, int axis, sg_m *o, PyObject **slot) {
    if (sg_alloc(axis == 0 ? 1 : a.r, axis == 0 ? a.c : 1, o, slot, 1) == NULL) return -1;
    for (npy_intp i = 0; i < a.r; ++i)
        for (npy_intp j = 0; j < a.c; ++j) o->p[axis == 0 ? j : i] += SG_AT(a, i, j);
    return 0;
}
static double sg_sum(sg_m a) {
    double s = 0.0;
    for (npy_intp i = 0; i < a.r; ++i)
        for (npy_intp j = 0; j < a.c; ++j) s += SG_AT(a, i, j);
    return s;
}
static double sg_trace(sg_m a) {
    double s = 0.0;
    for (npy_intp i = 0; i < a.r && i < a.c; ++i) s += SG_AT(a, i, i);
    return s;
}
"""
