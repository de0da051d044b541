/*
 * cmd.h: subcommands of the `rwkvcast` command line tool. Each lives in
 * tools/cmd_<name>.c, takes argv with argv[0] = the subcommand name, prints
 * its own --help, and returns the process exit code (0 ok, 1 runtime error,
 * 2 usage error).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef CMD_H
#define CMD_H

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
/* `rwkvcast eval --live [DIR]` (tools/eval_live.c); cmd_eval hands over
 * any argv that contains --live. */
int cmd_eval_live(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_tail(int argc, char **argv);
int cmd_ctl(int argc, char **argv);
int cmd_simulate(int argc, char **argv);
int cmd_plot(int argc, char **argv);
/* `rwkvcast keygen NAME` (tools/cmd_keygen.c): a CURVE key pair. */
int cmd_keygen(int argc, char **argv);

#endif
