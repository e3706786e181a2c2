#ifndef ROLLGATE_RGASSERT_H
#define ROLLGATE_RGASSERT_H

/*
 * RG_ASSERT(expr): an invariant the code relies on. Checked in every build
 * without NDEBUG (the default build, the tests, the sanitizer build and the
 * fuzzers); a failure prints "file:line: function: assertion 'expr' failed"
 * to stderr and aborts. Compiled out with -DNDEBUG (make bench); the
 * expression is then not evaluated, so it must have no side effects.
 * Input errors are never asserted: they get an error return.
 */
#ifdef NDEBUG
#define RG_ASSERT(x) ((void)sizeof(!(x)))
#else
#define RG_ASSERT(x) ((x) ? (void)0 : rg_assert_fail(#x, __FILE__, __LINE__, __func__))
#endif

/* Reports a failed RG_ASSERT and aborts. */
_Noreturn void rg_assert_fail(const char *expr, const char *file, int line, const char *func);

#endif
