/*
 * The sandbox ("pause") process of the test pause image that
 * tests/820-containerd-cri.bats builds and imports into its private containerd
 * (no registry is reachable from the tests). Like registry.k8s.io/pause it only
 * holds the pod's namespaces: it sleeps until SIGTERM or SIGINT and, as PID 1 of
 * the pod, reaps any child that exits. Built with `gcc -static`, so the image
 * needs nothing but this one file.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_term(int sig)
{
    (void)sig;
    _exit(0);
}

static void on_chld(int sig)
{
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

int main(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_term;
    if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0)
        return 1;
    sa.sa_handler = on_chld;
    sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
    if (sigaction(SIGCHLD, &sa, NULL) < 0)
        return 1;
    for (;;)
        pause();
}
