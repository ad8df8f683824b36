#define _GNU_SOURCE
#include "CVMMLauncher.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <grp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

/* Only raw system calls between vfork and exec: the child shares the parent's memory. */
static int write_pid(int fd, pid_t pid) {
    char text[24];
    int n = 0;
    char digits[24];
    unsigned long value = (unsigned long)pid;
    do { digits[n++] = (char)('0' + value % 10); value /= 10; } while (value > 0 && n < 20);
    for (int i = 0; i < n; i++) text[i] = digits[n - 1 - i];
    return syscall(SYS_write, fd, text, n) == n ? 0 : -1;
}

pid_t omr_vmm_spawn(const omr_vmm_spawn_args *a, int *err, const char **stage) {
    volatile int child_errno = 0;
    volatile const char *child_stage = "";
    /* Descriptors move above every number they could collide with before landing. */
    int high = 3 + a->pass_count + 3;
    for (int i = 0; i < a->pass_count; i++) if (a->pass_fds[i] >= high) high = a->pass_fds[i] + 1;
    if (a->stdin_fd >= high) high = a->stdin_fd + 1;
    if (a->stdout_fd >= high) high = a->stdout_fd + 1;
    if (a->stderr_fd >= high) high = a->stderr_fd + 1;

    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = vfork();
    if (pid == 0) {
#define FAIL(what) do { child_errno = errno ? errno : EINVAL; child_stage = what; _exit(127); } while (0)
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        for (int sig = 1; sig < _NSIG; sig++) {
            if (sig == SIGKILL || sig == SIGSTOP) continue;
            syscall(SYS_rt_sigaction, sig, &dfl, NULL, _NSIG / 8);
        }
        if (syscall(SYS_setsid) < 0) FAIL("setsid");
        pid_t self = (pid_t)syscall(SYS_getpid);
        for (int i = 0; i < a->cgroup_count; i++) {
            if (write_pid(a->cgroup_fds[i], self) < 0) FAIL("joining its cgroup");
        }
        if (a->netns_fd >= 0 && syscall(SYS_setns, a->netns_fd, CLONE_NEWNET) < 0) FAIL("entering the network namespace");
        /* Every source moves high first (so no dup2 below overwrites another source). */
        int sources[3 + 64];
        int count = 3 + (a->pass_count > 64 ? 64 : a->pass_count);
        sources[0] = a->stdin_fd;
        sources[1] = a->stdout_fd;
        sources[2] = a->stderr_fd;
        for (int i = 3; i < count; i++) sources[i] = a->pass_fds[i - 3];
        if (a->tap_name && a->tap_index >= 0 && 3 + a->tap_index < count) {
            int tap = (int)syscall(SYS_openat, AT_FDCWD, "/dev/net/tun", O_RDWR | O_CLOEXEC);
            if (tap < 0) FAIL("opening /dev/net/tun");
            struct ifreq request;
            memset(&request, 0, sizeof request);
            request.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
            strncpy(request.ifr_name, a->tap_name, IFNAMSIZ - 1);
            if (syscall(SYS_ioctl, tap, TUNSETIFF, &request) < 0) FAIL("attaching to the TAP device");
            sources[3 + a->tap_index] = tap;
        }
        for (int i = 0; i < count; i++) {
            if (sources[i] < 0) continue;
            int moved = (int)syscall(SYS_fcntl, sources[i], F_DUPFD, high);
            if (moved < 0) FAIL("moving a descriptor");
            sources[i] = moved;
        }
        for (int i = 0; i < count; i++) {
            if (sources[i] < 0) continue;
            if (syscall(SYS_dup2, sources[i], i) < 0) FAIL("placing a descriptor");
        }
        syscall(SYS_close_range, count, ~0U, 0);
        if (a->cwd && syscall(SYS_chdir, a->cwd) < 0) FAIL("entering its directory");
        syscall(SYS_umask, 077);
        if (a->change_identity) {
            if (syscall(SYS_setgroups, a->group_count, a->groups) < 0) FAIL("setgroups");
            if (syscall(SYS_setresgid, a->gid, a->gid, a->gid) < 0) FAIL("setresgid");
            if (syscall(SYS_setresuid, a->uid, a->uid, a->uid) < 0) FAIL("setresuid");
        }
        if (a->no_huge_pages && syscall(SYS_prctl, PR_SET_THP_DISABLE, 1, 0, 0, 0) < 0) FAIL("thp_disable");
        if (syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) FAIL("no_new_privs");
        sigset_t none;
        sigemptyset(&none);
        syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, _NSIG / 8);
        syscall(SYS_execve, a->path, a->argv, a->envp);
        FAIL("exec");
#undef FAIL
    }
    int saved = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        *err = saved;
        *stage = "vfork";
        return -1;
    }
    if (child_errno != 0) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        *err = child_errno;
        *stage = (const char *)child_stage;
        return -1;
    }
    *err = 0;
    *stage = "";
    return pid;
}

int omr_sealable_memfd(const char *name) {
    return memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
}

int omr_seal_read_only(int fd) {
    return fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
}

int omr_collapse_front(int fd, long long length) {
    return fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, (off_t)length);
}

long long omr_copy_sparse(int source, int target, long long size) {
    static const char zero[1 << 16];
    char *buffer = malloc(1 << 20);
    if (!buffer) return -ENOMEM;
    long long copied = 0;
    off_t offset = 0;
    while (offset < size) {
        off_t data = lseek(source, offset, SEEK_DATA);
        if (data < 0) break; /* ENXIO: only a hole is left */
        off_t hole = lseek(source, data, SEEK_HOLE);
        if (hole < 0 || hole > size) hole = size;
        for (off_t at = data; at < hole;) {
            size_t want = (size_t)((hole - at) < (1 << 20) ? (hole - at) : (1 << 20));
            ssize_t count = pread(source, buffer, want, at);
            if (count < 0 && errno == EINTR) continue;
            if (count <= 0) { int e = count < 0 ? errno : EIO; free(buffer); return -e; }
            /* Zero pages stay unallocated in the copy. */
            for (ssize_t piece = 0; piece < count; piece += (ssize_t)sizeof zero) {
                size_t length = (size_t)(count - piece) < sizeof zero ? (size_t)(count - piece) : sizeof zero;
                if (memcmp(buffer + piece, zero, length) == 0) continue;
                for (size_t done = 0; done < length;) {
                    ssize_t written = pwrite(target, buffer + piece + done, length - done, at + piece + (off_t)done);
                    if (written < 0 && errno == EINTR) continue;
                    if (written <= 0) { int e = written < 0 ? errno : EIO; free(buffer); return -e; }
                    done += (size_t)written;
                    copied += written;
                }
            }
            at += count;
        }
        offset = hole;
    }
    free(buffer);
    return copied;
}
