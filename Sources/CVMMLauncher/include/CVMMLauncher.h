#ifndef OMNIRUN_CVMMLAUNCHER_H
#define OMNIRUN_CVMMLAUNCHER_H

#include <sys/types.h>

/// How to start one VMM process.
typedef struct {
    const char *path;
    char *const *argv;
    char *const *envp;
    /// Become the child's 0, 1, 2 (-1: /dev/null is not opened; keep none).
    int stdin_fd, stdout_fd, stderr_fd;
    /// Become the child's 3, 4, 5, ... in this order; every other descriptor is closed.
    const int *pass_fds;
    int pass_count;
    /// A network namespace to enter first (-1: stay in the server's).
    int netns_fd;
    /// A TAP device of that namespace to attach to (NULL: none), opened while still
    /// privileged (QEMU's user needs no access to /dev/net/tun); its descriptor takes the
    /// place of `pass_fds[tap_index]`.
    const char *tap_name;
    int tap_index;
    /// `cgroup.procs` (or v1 `cgroup.procs`) files, open for writing: the child writes
    /// its pid into each before anything else, so every byte it allocates is charged there.
    const int *cgroup_fds;
    int cgroup_count;
    /// Drop to this identity (and these supplementary groups) before exec.
    int change_identity;
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    int group_count;
    /// The child's working directory, entered while still privileged (its ancestors may
    /// be closed to the new identity; paths below it are then reached relative to it).
    const char *cwd;
    /// No transparent huge pages in the child (`PR_SET_THP_DISABLE`, kept across exec):
    /// memory it touches sparsely is not rounded up to 2 MiB.
    int no_huge_pages;
} omr_vmm_spawn_args;

/// Starts the VMM: a new session, the namespace, the cgroups, the descriptors, the
/// working directory, the identity, no new privileges, then exec. Returns its pid; on a
/// failure before or at exec returns -1 with `*err` set (a child that had started has
/// been reaped) and `*stage` naming the step that failed.
pid_t omr_vmm_spawn(const omr_vmm_spawn_args *a, int *err, const char **stage);

/// A memfd that can be sealed (close-on-exec), or -1 with errno.
int omr_sealable_memfd(const char *name);
/// Seals a memfd for good: no writes, no growing or shrinking, no further seals.
int omr_seal_read_only(int fd);
/// Copies the first `size` bytes of `source` into `target` at the same offsets, skipping
/// holes and all-zero 64 KiB pieces (they stay unallocated); the bytes written, or -errno.
long long omr_copy_sparse(int source, int target, long long size);
/// Removes the first `length` bytes of a file in place (FALLOC_FL_COLLAPSE_RANGE;
/// `length` a multiple of the file system's block size), -1 with errno where unsupported.
int omr_collapse_front(int fd, long long length);

#endif
