/*
 * test_proctitle.c - titles go over the argv area claimed first; a later
 * claim (main() with its copy of argv, in the wheel) changes nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "../../../server/proctitle.c"

/* argv strings laid out as the kernel does: one block, NUL-separated. */
static char block[64] = "python3\0/venv/bin/mulefarm\0--http\0:8080";
static char copy[64] = "mulefarm\0--http\0:8080";

static void test_first_claim_wins(void **state)
{
	char *real[] = {block, block + 8, block + 27, block + 34, NULL};
	char *argv[] = {copy, copy + 9, copy + 16, NULL};
	proctitle_init(4, real);
	proctitle_init(3, argv);
	proctitle_set("master", 0, NULL);
	assert_string_equal(block, "mulefarm master");
	assert_string_equal(copy, "mulefarm"); /* untouched */
	/* the rest of the area is cleared: ps shows the title alone */
	for (size_t i = strlen(block); i < 40; i++)
		assert_int_equal(block[i], 0);
	proctitle_set("worker", 2, "idle");
	assert_string_equal(block, "mulefarm worker 2 (idle)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_first_claim_wins),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
