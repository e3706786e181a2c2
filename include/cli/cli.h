#ifndef ROLLGATE_CLI_H
#define ROLLGATE_CLI_H

/*
 * The subcommands. Each takes argv starting at the command name and returns
 * the process exit code: 0 success, 1 policy failure (enforce violation or
 * denial), 2 usage error or unreadable/invalid input.
 */
int cli_review(int argc, char **argv);
int cli_check(int argc, char **argv);
int cli_stamp(int argc, char **argv);
int cli_fn(int argc, char **argv);

#endif
