#define _GNU_SOURCE
#include "CAgentSupport.h"

#include <errno.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>

int omr_loopback_up(void) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    int rc = 0;
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) rc = errno;
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) rc = errno;
    }
    close(fd);
    return rc;
}

int omr_configure_ipv4(const char *ifname, unsigned int address, int prefix, unsigned int gateway) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
    int rc = 0;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = address;
    if (ioctl(fd, SIOCSIFADDR, &ifr) < 0) rc = errno;
    if (rc == 0) {
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = prefix == 0 ? 0 : htonl(0xffffffffu << (32 - prefix));
        if (ioctl(fd, SIOCSIFNETMASK, &ifr) < 0) rc = errno;
    }
    if (rc == 0 && ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) rc = errno;
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) rc = errno;
    }
    if (rc == 0) {
        struct rtentry route;
        memset(&route, 0, sizeof route);
        struct sockaddr_in *dst = (struct sockaddr_in *)&route.rt_dst;
        struct sockaddr_in *gw = (struct sockaddr_in *)&route.rt_gateway;
        struct sockaddr_in *mask = (struct sockaddr_in *)&route.rt_genmask;
        dst->sin_family = AF_INET;
        mask->sin_family = AF_INET;
        gw->sin_family = AF_INET;
        gw->sin_addr.s_addr = gateway;
        route.rt_flags = RTF_UP | RTF_GATEWAY;
        if (ioctl(fd, SIOCADDRT, &route) < 0 && errno != EEXIST) rc = errno;
    }
    close(fd);
    return rc;
}

static void omr_sigio_noop(int sig) { (void)sig; }

void omr_init_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = omr_sigio_noop;
    sigaction(SIGIO, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    int ignored[] = { SIGPIPE, SIGHUP, SIGALRM, SIGURG, SIGTTIN, SIGTTOU, SIGTSTP, SIGXFSZ, SIGUSR1, SIGUSR2 };
    for (unsigned i = 0; i < sizeof ignored / sizeof ignored[0]; i++) sigaction(ignored[i], &sa, NULL);
}

int omr_wait_for_host(int fd, int timeout_ms) {
    static int handler_installed = 0;
    if (!handler_installed) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = omr_sigio_noop;
        sigaction(SIGIO, &sa, NULL);
        handler_installed = 1;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGIO);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    struct f_owner_ex owner = { .type = F_OWNER_TID, .pid = (pid_t)syscall(SYS_gettid) };
    if (fcntl(fd, F_SETOWN_EX, &owner) < 0) return -errno;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_ASYNC) < 0) return -errno;
    int result = 0;
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int n = poll(&p, 1, 0);
        if (n < 0 && errno != EINTR) { result = -errno; break; }
        if (n >= 0 && !(p.revents & POLLHUP)) { result = 1; break; }
        struct timespec ts = { .tv_sec = timeout_ms / 1000, .tv_nsec = (long)(timeout_ms % 1000) * 1000000L };
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig < 0 && errno == EAGAIN) {
            /* Timed out: report whether the host came meanwhile. */
            n = poll(&p, 1, 0);
            result = (n > 0 && !(p.revents & POLLHUP)) ? 1 : 0;
            break;
        }
    }
    fcntl(fd, F_SETFL, flags & ~O_ASYNC);
    return result;
}
