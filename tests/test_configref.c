/* Tests for configref: the count a published config carries. The last
 * reference frees the config (the sanitizer build catches a leak or an
 * early free), and references taken and dropped on many threads at once
 * leave the count exact. */
#include "testutil.h"

#include <pthread.h>

#include "config.h"
#include "configref.h"

#define THREADS 8
#define ROUNDS 20000

static struct config *new_config(void)
{
	struct config *cfg = calloc(1, sizeof(*cfg));

	assert_non_null(cfg);
	assert_int_equal(config_defaults(cfg), 0);
	return cfg;
}

static void test_last_reference_frees(void **state)
{
	struct config_ref *r = config_ref_new(new_config()), *again;

	(void)state;
	assert_non_null(r);
	assert_int_equal(atomic_load(&r->refs), 1);
	again = config_ref(r);
	assert_ptr_equal(again, r);
	assert_int_equal(atomic_load(&r->refs), 2);
	config_unref(r);
	/* Still alive: the other reference reads it. */
	assert_string_equal(again->cfg->annotation_prefix, "rollgate.io");
	assert_int_equal(atomic_load(&again->refs), 1);
	config_unref(again); /* frees it */
	config_unref(NULL);
}

static atomic_int unreadable;

/* cmocka's asserts are the main thread's: a reader only counts. */
static void *churn(void *arg)
{
	struct config_ref *r = arg;

	for (int i = 0; i < ROUNDS; i++) {
		struct config_ref *mine = config_ref(r);
		if (!mine->cfg->annotation_prefix)
			atomic_fetch_add(&unreadable, 1);
		config_unref(mine);
	}
	return NULL;
}

/* The owner's reference keeps the config alive while readers come and go;
 * afterwards only it is left. */
static void test_threads(void **state)
{
	struct config_ref *r = config_ref_new(new_config());
	pthread_t t[THREADS];

	(void)state;
	assert_non_null(r);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, churn, r), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(atomic_load(&unreadable), 0);
	assert_int_equal(atomic_load(&r->refs), 1);
	config_unref(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_last_reference_frees),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
