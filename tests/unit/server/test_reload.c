/*
 * test_reload.c - what a reload re-executes: this binary with its argv, or
 * the command the wheel's extension module set (the interpreter and the
 * stub's command line).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../../server/reload.c"

static void forget(void)
{
	free(saved_argv); /* the strings leak: a test process */
	saved_argv = NULL;
	exe_path[0] = '\0';
}

static void test_prepare_saves_this_binary_and_argv(void **state)
{
	char *argv[] = {"mulefarm", "--http", ":8080", NULL};
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	assert_true(n > 0);
	self[n] = '\0';
	forget();
	assert_int_equal(reload_prepare(3, argv), 0);
	assert_string_equal(exe_path, self);
	assert_string_equal(saved_argv[0], "mulefarm");
	assert_string_equal(saved_argv[2], ":8080");
	assert_null(saved_argv[3]);
	assert_ptr_not_equal(saved_argv[1], argv[1]); /* a copy: titles overwrite argv */
}

static void test_set_command_wins_over_prepare(void **state)
{
	char *cmd[] = {"/srv/venv/bin/python3", "/srv/venv/bin/mulefarm", "--http", ":8080", NULL};
	char *argv[] = {"/srv/venv/bin/mulefarm", "--http", ":8080", NULL};
	char cwd[PATH_MAX];
	forget();
	assert_int_equal(reload_set_command(cmd[0], 4, cmd), 0);
	assert_int_equal(reload_prepare(3, argv), 0);
	assert_string_equal(exe_path, "/srv/venv/bin/python3");
	for (int i = 0; i < 4; i++)
		assert_string_equal(saved_argv[i], cmd[i]);
	assert_null(saved_argv[4]);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_string_equal(start_dir, cwd); /* still saved: a reload starts there */
}

static void test_set_command_refuses_a_path_too_long(void **state)
{
	char exe[PATH_MAX + 8];
	memset(exe, 'x', sizeof(exe) - 1);
	exe[sizeof(exe) - 1] = '\0';
	char *cmd[] = {exe, NULL};
	forget();
	assert_int_equal(reload_set_command(exe, 1, cmd), -1);
	assert_null(saved_argv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_prepare_saves_this_binary_and_argv),
	        cmocka_unit_test(test_set_command_wins_over_prepare),
	        cmocka_unit_test(test_set_command_refuses_a_path_too_long),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
