/* pause.c: kina's pod sandbox process (the image kubeadm calls "pause").
 * It holds the pod's namespaces open: as PID 1 of the pod it reaps orphans,
 * ends on SIGINT or SIGTERM, and otherwise sleeps. Linked statically. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef KINA_PAUSE_VERSION
#define KINA_PAUSE_VERSION "unknown"
#endif

static void on_stop(int sig) {
  (void)sig;
  _exit(0);
}

static void on_child(int sig) {
  (void)sig;
  int saved = errno;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
  errno = saved;
}

int main(int argc, char **argv) {
  if (argc > 1 && (strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--version") == 0)) {
    printf("pause (kina) %s\n", KINA_PAUSE_VERSION);
    return 0;
  }
  if (argc > 1) {
    fprintf(stderr, "pause: unexpected argument %s (only -v)\n", argv[1]);
    return 64;
  }
  if (getpid() != 1) fprintf(stderr, "pause: warning: not PID 1, orphans are not mine to reap\n");
  struct sigaction stop, child;
  memset(&stop, 0, sizeof stop);
  memset(&child, 0, sizeof child);
  stop.sa_handler = on_stop;
  child.sa_handler = on_child;
  child.sa_flags = SA_NOCLDSTOP | SA_RESTART;
  if (sigaction(SIGINT, &stop, NULL) != 0 || sigaction(SIGTERM, &stop, NULL) != 0 ||
      sigaction(SIGCHLD, &child, NULL) != 0) {
    perror("pause: sigaction");
    return 71;
  }
  for (;;) pause();
}
