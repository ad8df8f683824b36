#define _GNU_SOURCE
#include "CAgentSupport.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* Copies bytes between the virtio-serial port and one end of a socketpair, so that
 * the event loop only ever sees an ordinary stream socket. A character device whose
 * host side comes and goes can report hang-up and then have nothing to read (the
 * host reconnected in between); that is handled here instead of in the event loop. */
struct omr_bridge {
    int port;
    int sock;
    atomic_int stop;
    pthread_t up, down;
};

static int write_all(int fd, const char *buf, ssize_t len, atomic_int *stop) {
    while (len > 0) {
        ssize_t n = write(fd, buf, (size_t)len);
        if (n > 0) { buf += n; len -= n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) {
            struct pollfd p = { .fd = fd, .events = POLLOUT };
            poll(&p, 1, 200);
            if (stop && atomic_load(stop)) return -1;
            continue;
        }
        return -1;
    }
    return 0;
}

/* port -> socket */
static void *bridge_up(void *arg) {
    struct omr_bridge *b = arg;
    char buf[65536];
    while (!atomic_load(&b->stop)) {
        struct pollfd p = { .fd = b->port, .events = POLLIN };
        int r = poll(&p, 1, 200);
        if (r < 0 && errno != EINTR) break;
        if (r <= 0) continue;
        ssize_t n = read(b->port, buf, sizeof buf);
        if (n > 0) {
            if (write_all(b->sock, buf, n, &b->stop) < 0) break;
            continue;
        }
        if (n == 0) break;                                   /* the host went away */
        if (errno == EAGAIN || errno == EINTR) {
            /* Hang-up reported, then the host came back before we read: carry on. */
            if (p.revents & POLLHUP) usleep(1000);
            continue;
        }
        break;
    }
    atomic_store(&b->stop, 1);
    shutdown(b->sock, SHUT_RDWR);
    return NULL;
}

/* socket -> port */
static void *bridge_down(void *arg) {
    struct omr_bridge *b = arg;
    char buf[65536];
    for (;;) {
        ssize_t n = read(b->sock, buf, sizeof buf);
        if (n > 0) {
            if (write_all(b->port, buf, n, &b->stop) < 0) break;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        break;                                               /* the event loop closed its end */
    }
    atomic_store(&b->stop, 1);
    return NULL;
}

void *omr_bridge_start(int port_fd, int *loop_fd) {
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) return NULL;
    int flags = fcntl(port_fd, F_GETFL);
    fcntl(port_fd, F_SETFL, flags | O_NONBLOCK);
    struct omr_bridge *b = calloc(1, sizeof *b);
    if (!b) { close(pair[0]); close(pair[1]); return NULL; }
    b->port = port_fd;
    b->sock = pair[0];
    atomic_init(&b->stop, 0);
    if (pthread_create(&b->up, NULL, bridge_up, b) != 0) { close(pair[0]); close(pair[1]); free(b); return NULL; }
    if (pthread_create(&b->down, NULL, bridge_down, b) != 0) {
        atomic_store(&b->stop, 1);
        shutdown(pair[0], SHUT_RDWR);
        pthread_join(b->up, NULL);
        close(pair[0]); close(pair[1]); free(b);
        return NULL;
    }
    *loop_fd = pair[1];
    return b;
}

void omr_bridge_finish(void *handle) {
    struct omr_bridge *b = handle;
    atomic_store(&b->stop, 1);
    shutdown(b->sock, SHUT_RDWR);
    pthread_join(b->up, NULL);
    pthread_join(b->down, NULL);
    close(b->sock);
    close(b->port);
    free(b);
}
