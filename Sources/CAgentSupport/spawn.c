#define _GNU_SOURCE
#include "CAgentSupport.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/inotify.h>
#include <termios.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>
#include <linux/random.h>
#include <sys/random.h>
#include <sys/reboot.h>
#include <sys/stat.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

pid_t omr_spawn(const omr_spawn_args *a, int *err) {
    volatile int child_errno = 0;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);

    pid_t pid = vfork();
    if (pid == 0) {
        /* Child: shares memory with the blocked parent thread until execve. */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        for (int sig = 1; sig < _NSIG; sig++) {
            if (sig == SIGKILL || sig == SIGSTOP) continue;
            syscall(SYS_rt_sigaction, sig, &dfl, NULL, _NSIG / 8);
        }
        if (syscall(SYS_setsid) < 0) { child_errno = errno; _exit(127); }
        int fds[3] = { a->stdin_fd, a->stdout_fd, a->stderr_fd };
        for (int i = 0; i < 3; i++) {
            /* Move any source fd that sits below 3 out of the way first. */
            if (fds[i] >= 0 && fds[i] < 3 && fds[i] != i) {
                int moved = (int)syscall(SYS_fcntl, fds[i], F_DUPFD, 3);
                if (moved < 0) { child_errno = errno; _exit(127); }
                for (int j = 0; j < 3; j++) if (fds[j] == fds[i]) fds[j] = moved;
            }
        }
        for (int i = 0; i < 3; i++) {
            if (fds[i] < 0) continue;
            if (syscall(SYS_dup2, fds[i], i) < 0) { child_errno = errno; _exit(127); }
        }
        if (a->controlling_tty) {
            if (syscall(SYS_ioctl, 0, TIOCSCTTY, 0) < 0) { child_errno = errno; _exit(127); }
        }
        syscall(SYS_close_range, 3, ~0U, 0);
        if (a->change_identity) {
            /* (uid_t)-1 and (gid_t)-1 mean "leave unchanged" to setres*id: the child would stay root. */
            if (a->uid == (uid_t)-1 || a->gid == (gid_t)-1) { child_errno = EINVAL; _exit(127); }
            if (syscall(SYS_setgroups, a->ngroups, a->groups) < 0) { child_errno = errno; _exit(127); }
            if (syscall(SYS_setresgid, a->gid, a->gid, a->gid) < 0) { child_errno = errno; _exit(127); }
            if (syscall(SYS_setresuid, a->uid, a->uid, a->uid) < 0) { child_errno = errno; _exit(127); }
        }
        if (a->cwd && syscall(SYS_chdir, a->cwd) < 0) { child_errno = errno; _exit(127); }
        sigset_t none;
        sigemptyset(&none);
        syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, _NSIG / 8);
        syscall(SYS_execve, a->path, a->argv, a->envp);
        child_errno = errno;
        _exit(127);
    }
    int saved = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) { *err = saved; return -1; }
    if (child_errno != 0) {
        /* The child failed before or at exec and has exited; the reaper collects it. */
        *err = child_errno;
        return -pid;
    }
    *err = 0;
    return pid;
}

int omr_openpty(int *master, int *slave, unsigned short cols, unsigned short rows) {
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0) return errno;
    if (grantpt(m) < 0 || unlockpt(m) < 0) { int e = errno; close(m); return e; }
    char name[128];
    if (ptsname_r(m, name, sizeof name) != 0) { int e = errno; close(m); return e; }
    int s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0) { int e = errno; close(m); return e; }
    struct winsize ws = { .ws_row = rows, .ws_col = cols };
    ioctl(m, TIOCSWINSZ, &ws);
    *master = m;
    *slave = s;
    return 0;
}

int omr_set_winsize(int fd, unsigned short cols, unsigned short rows) {
    struct winsize ws = { .ws_row = rows, .ws_col = cols };
    return ioctl(fd, TIOCSWINSZ, &ws) < 0 ? errno : 0;
}

int omr_add_entropy(const uint8_t *bytes, int len) {
    int fd = open("/dev/urandom", O_RDWR | O_CLOEXEC);
    if (fd < 0) return errno;
    struct {
        int entropy_count;
        int buf_size;
        uint8_t buf[256];
    } info;
    if (len > (int)sizeof info.buf) len = (int)sizeof info.buf;
    info.entropy_count = len * 8;
    info.buf_size = len;
    memcpy(info.buf, bytes, (size_t)len);
    int rc = 0;
    if (ioctl(fd, RNDADDENTROPY, &info) < 0) rc = errno;
#ifdef RNDRESEEDCRNG
    if (rc == 0 && ioctl(fd, RNDRESEEDCRNG) < 0) rc = errno;
#endif
    memset(&info, 0, sizeof info);
    close(fd);
    return rc;
}

int omr_finit_module(int fd, const char *params) {
    return syscall(SYS_finit_module, fd, params, 0) < 0 ? errno : 0;
}

int omr_set_clock(int64_t unix_nanos) {
    struct timespec ts = { .tv_sec = unix_nanos / 1000000000LL, .tv_nsec = unix_nanos % 1000000000LL };
    return clock_settime(CLOCK_REALTIME, &ts) < 0 ? errno : 0;
}

int omr_inotify_record(const char *buf, int offset, int *wd, uint32_t *mask, const char **name) {
    const struct inotify_event *ev = (const struct inotify_event *)(buf + offset);
    *wd = ev->wd;
    *mask = ev->mask;
    *name = ev->len > 0 ? ev->name : "";
    return (int)(sizeof(struct inotify_event) + ev->len);
}

int omr_set_fs_identity(uid_t uid, gid_t gid, const gid_t *groups, int ngroups) {
    /* setfsuid/setfsgid report no errors: each is checked by reading the value back
       (a call with -1 changes nothing and returns the current one). -1 itself is
       "no change" to them, so it is refused. On any failure the thread goes back to
       root's identity and the caller gets an errno: it must not go on as root. */
    if (uid == (uid_t)-1 || gid == (gid_t)-1 || ngroups < 0) return EINVAL;
    int err = 0;
    if (syscall(SYS_setgroups, ngroups, groups) < 0) {
        err = errno;
    } else {
        syscall(SYS_setfsgid, gid);
        if ((gid_t)syscall(SYS_setfsgid, (gid_t)-1) != gid) {
            err = EPERM;
        } else {
            syscall(SYS_setfsuid, uid);
            if ((uid_t)syscall(SYS_setfsuid, (uid_t)-1) != uid) err = EPERM;
        }
    }
    if (err != 0) {
        syscall(SYS_setfsuid, 0);
        syscall(SYS_setfsgid, 0);
        syscall(SYS_setgroups, 0, NULL);
    }
    return err;
}

int omr_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC) < 0 ? errno : 0; }

int omr_readable_bytes(int fd) {
    int count = 0;
    return ioctl(fd, FIONREAD, &count) < 0 ? -1 : count;
}

long omr_getrandom(void *buf, unsigned long len) { return getrandom(buf, len, 0); }

int omr_reboot_now(void) { return reboot(RB_AUTOBOOT); }

int omr_is_directory(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}
