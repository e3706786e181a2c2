/* Tests for dynbuf: the cap, sticky errors, out-of-memory versus too big,
 * formatted output at the cap, ownership on take, and the wipes of a
 * sensitive buffer, observed at free() through tests/allocwrap.h. */
#include "allocwrap.h"

#include "dynbuf.h"

static int setup(void **state)
{
	aw_reset();
	return 0;
}

static void test_add_and_terminate(void **state)
{
	struct dynbuf b;

	dynbuf_init(&b, 1024);
	assert_string_equal(dynbuf_ptr(&b), "");
	assert_int_equal(dynbuf_len(&b), 0);
	assert_int_equal(dynbuf_add(&b, "abc"), DYNBUF_OK);
	assert_int_equal(dynbuf_addn(&b, "d\0e", 3), DYNBUF_OK);
	assert_int_equal(dynbuf_addn(&b, NULL, 0), DYNBUF_OK);
	assert_int_equal(dynbuf_addf(&b, "-%d-%s", 42, "x"), DYNBUF_OK);
	assert_int_equal(dynbuf_len(&b), 11);
	assert_memory_equal(dynbuf_ptr(&b), "abcd\0e-42-x", 12); /* and the NUL */
	dynbuf_reset(&b);
	assert_int_equal(dynbuf_len(&b), 0);
	assert_string_equal(dynbuf_ptr(&b), "");
	assert_int_equal(dynbuf_add(&b, "again"), DYNBUF_OK);
	assert_string_equal(dynbuf_ptr(&b), "again");
	dynbuf_clear(&b);
	assert_string_equal(dynbuf_ptr(&b), "");
	dynbuf_clear(&b); /* twice is fine */
	dynbuf_clear(NULL);
}

/* Growth by many small adds keeps every byte. */
static void test_many_adds(void **state)
{
	struct dynbuf b;
	char want[10000];

	dynbuf_init(&b, sizeof(want));
	for (size_t i = 0; i < sizeof(want); i++) {
		want[i] = (char)('a' + i % 26);
		assert_int_equal(dynbuf_addn(&b, &want[i], 1), DYNBUF_OK);
	}
	assert_int_equal(dynbuf_len(&b), sizeof(want));
	assert_memory_equal(dynbuf_ptr(&b), want, sizeof(want));
	assert_true(aw.largest <= sizeof(want) + 1);
	dynbuf_clear(&b);
}

/* The cap counts content bytes: exactly max fits, one more fails, and no
 * allocation ever passes max + 1. */
static void test_cap(void **state)
{
	struct dynbuf b;

	dynbuf_init(&b, 100);
	for (int i = 0; i < 10; i++)
		assert_int_equal(dynbuf_add(&b, "0123456789"), DYNBUF_OK);
	assert_int_equal(dynbuf_len(&b), 100);
	assert_int_equal(dynbuf_addn(&b, "x", 1), DYNBUF_E_TOOBIG);
	assert_true(aw.largest <= 101);
	/* Sticky, and the memory is gone. */
	assert_int_equal(dynbuf_error(&b), DYNBUF_E_TOOBIG);
	assert_int_equal(dynbuf_len(&b), 0);
	assert_int_equal(dynbuf_add(&b, ""), DYNBUF_E_TOOBIG);
	assert_int_equal(dynbuf_addf(&b, "%d", 1), DYNBUF_E_TOOBIG);
	assert_null(dynbuf_take(&b, NULL));
	/* reset forgets the error. */
	dynbuf_reset(&b);
	assert_int_equal(dynbuf_error(&b), DYNBUF_OK);
	assert_int_equal(dynbuf_add(&b, "ok"), DYNBUF_OK);
	/* One add bigger than the cap fails without allocating for it. */
	aw.largest = 0;
	{
		char big[4096];
		memset(big, 'z', sizeof(big));
		assert_int_equal(dynbuf_addn(&b, big, sizeof(big)), DYNBUF_E_TOOBIG);
	}
	assert_true(aw.largest <= 101);
	dynbuf_clear(&b);
	assert_int_equal(dynbuf_error(&b), DYNBUF_OK);
}

/* A failed allocation is DYNBUF_E_NOMEM, not "too big", and is sticky. */
static void test_out_of_memory(void **state)
{
	struct dynbuf b;

	dynbuf_init(&b, 1 << 20);
	aw_fail_next(1);
	assert_int_equal(dynbuf_add(&b, "first"), DYNBUF_E_NOMEM);
	assert_int_equal(dynbuf_error(&b), DYNBUF_E_NOMEM);
	assert_int_equal(dynbuf_add(&b, "second"), DYNBUF_E_NOMEM);
	dynbuf_reset(&b);
	assert_int_equal(dynbuf_add(&b, "small"), DYNBUF_OK);
	/* Failing on growth releases what was there (the leak check says so). */
	aw_fail_next(1);
	{
		char big[1000];
		memset(big, 'q', sizeof(big));
		assert_int_equal(dynbuf_addn(&b, big, sizeof(big)), DYNBUF_E_NOMEM);
	}
	assert_int_equal(dynbuf_len(&b), 0);
	/* take reports the failure rather than handing out partial bytes. */
	assert_null(dynbuf_take(&b, NULL));
	dynbuf_clear(&b);
	/* addf growth failing. */
	assert_int_equal(dynbuf_add(&b, "x"), DYNBUF_OK);
	aw_fail_next(1);
	assert_int_equal(dynbuf_addf(&b, "%0200d", 7), DYNBUF_E_NOMEM);
	dynbuf_clear(&b);
}

/* addf output that would pass the cap fails whole; output that just fits
 * is kept, whether it fits the current allocation or needs growth. */
static void test_addf_at_cap(void **state)
{
	struct dynbuf b;

	dynbuf_init(&b, 10);
	assert_int_equal(dynbuf_addf(&b, "%s", "12345"), DYNBUF_OK);
	assert_int_equal(dynbuf_addf(&b, "%05d", 678), DYNBUF_OK);
	assert_string_equal(dynbuf_ptr(&b), "1234500678");
	assert_int_equal(dynbuf_addf(&b, "%c", 'x'), DYNBUF_E_TOOBIG);
	assert_string_equal(dynbuf_ptr(&b), "");
	dynbuf_clear(&b);

	dynbuf_init(&b, 100);
	assert_int_equal(dynbuf_add(&b, "ab"), DYNBUF_OK);
	aw.largest = 0;
	assert_int_equal(dynbuf_addf(&b, "%099d", 5), DYNBUF_E_TOOBIG); /* 2 + 99 > 100 */
	assert_true(aw.largest <= 101);
	dynbuf_reset(&b);
	assert_int_equal(dynbuf_add(&b, "ab"), DYNBUF_OK);
	assert_int_equal(dynbuf_addf(&b, "%098d", 5), DYNBUF_OK); /* exactly 100, grows */
	assert_int_equal(dynbuf_len(&b), 100);
	assert_int_equal(dynbuf_ptr(&b)[99], '5');
	assert_int_equal(dynbuf_ptr(&b)[100], '\0');
	dynbuf_clear(&b);
}

static void test_take(void **state)
{
	struct dynbuf b;
	size_t len = 99;
	char *s;

	dynbuf_init(&b, 64);
	s = dynbuf_take(&b, &len); /* nothing added: still a string */
	assert_non_null(s);
	assert_string_equal(s, "");
	assert_int_equal(len, 0);
	free(s);
	assert_int_equal(dynbuf_add(&b, "owned"), DYNBUF_OK);
	s = dynbuf_take(&b, &len);
	assert_string_equal(s, "owned");
	assert_int_equal(len, 5);
	/* The buffer is empty and reusable; the string is the caller's alone
	 * (freeing both would fail cmocka's checks, leaking one too). */
	assert_int_equal(dynbuf_len(&b), 0);
	assert_int_equal(dynbuf_add(&b, "next"), DYNBUF_OK);
	assert_string_equal(dynbuf_ptr(&b), "next");
	assert_string_equal(s, "owned");
	free(s);
	dynbuf_clear(&b);
}

static void test_consume(void **state)
{
	struct dynbuf b;

	dynbuf_init(&b, 64);
	assert_int_equal(dynbuf_add(&b, "line one\nline two\n"), DYNBUF_OK);
	dynbuf_consume(&b, 9);
	assert_string_equal(dynbuf_ptr(&b), "line two\n");
	dynbuf_consume(&b, 0);
	dynbuf_consume(&b, dynbuf_len(&b));
	assert_string_equal(dynbuf_ptr(&b), "");
	dynbuf_clear(&b);
}

/* Cutting lines in place, as a line reader does before parsing each. */
static void test_data_in_place(void **state)
{
	struct dynbuf b;
	char *p, *nl;

	dynbuf_init(&b, 64);
	assert_null(dynbuf_data(&b));
	assert_int_equal(dynbuf_add(&b, "one\ntwo\n"), DYNBUF_OK);
	p = dynbuf_data(&b);
	assert_ptr_equal(p, dynbuf_ptr(&b));
	nl = memchr(p, '\n', dynbuf_len(&b));
	assert_non_null(nl);
	*nl = '\0';
	assert_string_equal(p, "one");
	dynbuf_consume(&b, (size_t)(nl - p) + 1);
	assert_string_equal(dynbuf_ptr(&b), "two\n");
	dynbuf_clear(&b);
	assert_null(dynbuf_data(&b));
}

/* Reading straight into the buffer: room is at least what was asked, never
 * past the cap, and commit appends what was written. */
static void test_room_commit(void **state)
{
	struct dynbuf b;
	size_t avail = 0;
	char *room;

	dynbuf_init(&b, 100);
	room = dynbuf_room(&b, 10, &avail);
	assert_non_null(room);
	assert_true(avail >= 10 && avail <= 100);
	memcpy(room, "0123456789", 10);
	dynbuf_commit(&b, 10);
	dynbuf_commit(&b, 0);
	assert_string_equal(dynbuf_ptr(&b), "0123456789");
	room = dynbuf_room(&b, 90, &avail);
	assert_non_null(room);
	assert_int_equal(avail, 90); /* the cap */
	memset(room, 'x', 5);
	dynbuf_commit(&b, 5);
	assert_int_equal(dynbuf_len(&b), 15);
	assert_string_equal(dynbuf_ptr(&b) + 10, "xxxxx");
	assert_null(dynbuf_room(&b, 86, &avail));
	assert_int_equal(dynbuf_error(&b), DYNBUF_E_TOOBIG);
	dynbuf_clear(&b);
	aw_fail_next(1);
	assert_null(dynbuf_room(&b, 1, &avail));
	assert_int_equal(dynbuf_error(&b), DYNBUF_E_NOMEM);
	dynbuf_clear(&b);
}

/* The first allocation fits what is added (a file read in one go), later
 * ones double. */
static void test_first_allocation_fits(void **state)
{
	struct dynbuf b;
	char big[5000];

	memset(big, 'f', sizeof(big));
	dynbuf_init(&b, 1 << 20);
	assert_int_equal(dynbuf_addn(&b, big, sizeof(big)), DYNBUF_OK);
	assert_int_equal(aw.largest, sizeof(big) + 1);
	assert_int_equal(dynbuf_add(&b, "+"), DYNBUF_OK);
	assert_int_equal(aw.largest, 2 * (sizeof(big) + 1));
	dynbuf_clear(&b);
}

/* A sensitive buffer never reallocs, and every block it gives back was
 * zero when freed: on growth, on clear, and on failure. */
static void test_sensitive_wipes(void **state)
{
	struct dynbuf b;
	char secret[40];

	memset(secret, 'S', sizeof(secret));
	dynbuf_init(&b, 4096);
	dynbuf_set_sensitive(&b);
	assert_int_equal(dynbuf_addn(&b, secret, sizeof(secret)), DYNBUF_OK);
	aw_watch(dynbuf_ptr(&b), sizeof(secret));
	for (int i = 0; i < 10; i++) /* grows past the first block */
		assert_int_equal(dynbuf_addn(&b, secret, sizeof(secret)), DYNBUF_OK);
	assert_true(aw.watch_freed);
	assert_true(aw.watch_zero);
	assert_int_equal(aw.reallocs, 0);
	assert_int_equal(dynbuf_len(&b), 11 * sizeof(secret));

	aw_watch(dynbuf_ptr(&b), dynbuf_len(&b));
	dynbuf_clear(&b);
	assert_true(aw.watch_freed);
	assert_true(aw.watch_zero);

	/* Past the cap the released block is wiped too. */
	assert_int_equal(dynbuf_addn(&b, secret, sizeof(secret)), DYNBUF_OK);
	aw_watch(dynbuf_ptr(&b), sizeof(secret));
	{
		char big[5000];
		memset(big, 'B', sizeof(big));
		assert_int_equal(dynbuf_addn(&b, big, sizeof(big)), DYNBUF_E_TOOBIG);
	}
	assert_true(aw.watch_freed);
	assert_true(aw.watch_zero);
	dynbuf_clear(&b);
}

/* The same observation on an ordinary buffer sees the bytes: the check
 * above can fail. */
static void test_plain_is_not_wiped(void **state)
{
	struct dynbuf b;

	dynbuf_init(&b, 4096);
	assert_int_equal(dynbuf_add(&b, "not secret"), DYNBUF_OK);
	aw_watch(dynbuf_ptr(&b), dynbuf_len(&b));
	dynbuf_clear(&b);
	assert_true(aw.watch_freed);
	assert_false(aw.watch_zero);
}

/* Dropped bytes and reset contents of a sensitive buffer are zeroed in
 * place, while the allocation stays. */
static void test_sensitive_consume_and_reset(void **state)
{
	struct dynbuf b;
	const char *p;

	dynbuf_init(&b, 256);
	dynbuf_set_sensitive(&b);
	assert_int_equal(dynbuf_add(&b, "token=abcdef;rest"), DYNBUF_OK);
	dynbuf_consume(&b, 13);
	p = dynbuf_ptr(&b);
	assert_string_equal(p, "rest");
	for (size_t i = 5; i < 17; i++)
		assert_int_equal(p[i], 0);
	dynbuf_reset(&b);
	for (size_t i = 0; i < 17; i++)
		assert_int_equal(p[i], 0);
	dynbuf_clear(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_add_and_terminate, setup),
		cmocka_unit_test_setup(test_many_adds, setup),
		cmocka_unit_test_setup(test_cap, setup),
		cmocka_unit_test_setup(test_out_of_memory, setup),
		cmocka_unit_test_setup(test_addf_at_cap, setup),
		cmocka_unit_test_setup(test_take, setup),
		cmocka_unit_test_setup(test_consume, setup),
		cmocka_unit_test_setup(test_data_in_place, setup),
		cmocka_unit_test_setup(test_room_commit, setup),
		cmocka_unit_test_setup(test_first_allocation_fits, setup),
		cmocka_unit_test_setup(test_sensitive_wipes, setup),
		cmocka_unit_test_setup(test_plain_is_not_wiped, setup),
		cmocka_unit_test_setup(test_sensitive_consume_and_reset, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
