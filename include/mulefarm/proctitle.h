/*
 * proctitle.h - process titles as ps shows them: "mulefarm master",
 * "mulefarm worker 2 (idle)", "mulefarm mule 1 (busy)", each after the
 * --procname-prefix.
 *
 * The title is written over the argv area (and the environment strings
 * that follow it, which are first copied to the heap), as nginx and
 * PostgreSQL do; the kernel's comm name is set too.
 */
#ifndef MULEFARM_PROCTITLE_H
#define MULEFARM_PROCTITLE_H

/* Claims the argv and environ area. Call once in main() after everything
 * that reads argv directly has copied what it needs; once an area is
 * claimed, later calls do nothing (the wheel's extension module claims the
 * interpreter's own argv before main() sees its copy). */
void proctitle_init(int argc, char **argv);

/* Sets the prefix (--procname-prefix) put before every title. */
void proctitle_prefix(const char *prefix);

/* Sets the title to "mulefarm <role>" or "mulefarm <role> <id> (<state>)". */
void proctitle_set(const char *role, int id, const char *state);

/* Changes only the state of the last title set. Cheap; any thread. */
void proctitle_state(const char *state);

#endif
