#ifndef ROLLGATE_SERVE_H
#define ROLLGATE_SERVE_H

/*
 * `rollgate serve`: the webhook server with its certificates, config
 * reloads, object source and (in a cluster) the reload controller. Takes
 * argv starting at the command name; returns the process exit code (0 after
 * a clean shutdown, 2 on a usage or startup error).
 */
int serve_main(int argc, char **argv);

#endif
