#ifndef OMNIRUN_CAGENTSUPPORT_H
#define OMNIRUN_CAGENTSUPPORT_H

#include <sys/types.h>
#include <stdint.h>

/// Everything a child needs, prepared before the fork so that the child only
/// makes raw system calls (it runs in a vfork-style shared address space).
typedef struct omr_spawn_args {
    const char *path;          ///< absolute path of the executable
    char *const *argv;         ///< NULL-terminated
    char *const *envp;         ///< NULL-terminated
    const char *cwd;           ///< may be NULL
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    int ngroups;
    int change_identity;       ///< 0: keep the agent's identity (root)
    int stdin_fd;              ///< fds to place at 0, 1, 2
    int stdout_fd;
    int stderr_fd;
    int controlling_tty;       ///< non-zero: make fd 0 the controlling terminal (PTY)
} omr_spawn_args;

/// Starts a process in a new session and process group. Returns the pid, or -1
/// with *err set to the errno of the failing step (exec included).
pid_t omr_spawn(const omr_spawn_args *args, int *err);

/// Opens a pseudo terminal pair with the given size. Returns 0 or an errno.
int omr_openpty(int *master, int *slave, unsigned short cols, unsigned short rows);

/// Sets a terminal's window size (the kernel signals SIGWINCH to its foreground group).
int omr_set_winsize(int fd, unsigned short cols, unsigned short rows);

/// Credits `len` bytes of host entropy to the kernel pool and forces the CRNG to reseed.
/// Returns 0, or an errno.
int omr_add_entropy(const uint8_t *bytes, int len);

/// finit_module(2).
int omr_finit_module(int fd, const char *params);

/// Sets the wall clock. Returns 0 or an errno.
int omr_set_clock(int64_t unix_nanos);

/// Reads the inotify events in buf; used to walk variable-length records from Swift.
/// Returns the length of the record at offset, filling the out parameters.
int omr_inotify_record(const char *buf, int offset, int *wd, uint32_t *mask, const char **name);



/// Sets this thread's file-system identity (fsuid, fsgid, supplementary groups) for
/// permission checks of the file operations that follow on this thread only. Returns 0,
/// or an errno when any part did not take (the thread is then back to root's identity,
/// and the caller must fail the operation rather than run it).
int omr_set_fs_identity(uid_t uid, gid_t gid, const gid_t *groups, int ngroups);

/// Brings the loopback interface up. Returns 0 or an errno.
int omr_loopback_up(void);
/* Gives `ifname` the IPv4 address/prefix, brings it up and adds a default route via
   `gateway` (all in network byte order). Returns 0 or an errno. */
int omr_configure_ipv4(const char *ifname, unsigned int address, int prefix, unsigned int gateway);

/// pipe2(2) with O_CLOEXEC.
int omr_pipe_cloexec(int fds[2]);
/// Bytes waiting to be read from a pipe or terminal (FIONREAD), or -1.
int omr_readable_bytes(int fd);
/// getrandom(2); returns bytes read or -1.
long omr_getrandom(void *buf, unsigned long len);
/// reboot(2) with RB_AUTOBOOT.
int omr_reboot_now(void);
/// 1 if path (following symlinks) is a directory.
int omr_is_directory(const char *path);

/// Waits until the host side of a virtio-serial port is connected: returns 1 when
/// connected, 0 on timeout, or a negative errno. Sleeps in sigtimedwait for the
/// SIGIO the port sends when the host connects, so no timer or polling is involved.
/// Call it on a thread dedicated to waiting.
int omr_wait_for_host(int fd, int timeout_ms);

/// PID 1 signal hygiene: ignores job-control, hang-up and I/O signals and installs
/// the SIGIO handler `omr_wait_for_host` relies on, before any thread exists.
void omr_init_signals(void);

/// Starts copying between the port and a new socketpair; `*loop_fd` receives the
/// socket the event loop should use. Returns a handle, or NULL.
void *omr_bridge_start(int port_fd, int *loop_fd);
/// Stops the copy threads, waits for them, and closes the port and the bridge's socket.
void omr_bridge_finish(void *handle);
#endif
