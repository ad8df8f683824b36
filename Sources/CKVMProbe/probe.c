#define _GNU_SOURCE
#include "CKVMProbe.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static long long now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

long long omr_kvm_probe(unsigned int iterations) {
    long long result = -EINVAL;
    int kvm = -1, vm = -1, vcpu = -1;
    void *mem = MAP_FAILED, *run = MAP_FAILED;
    size_t run_size = 0;

    kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) return -errno;
    if (ioctl(kvm, KVM_GET_API_VERSION, 0) != 12) { result = -ENOTSUP; goto out; }
    vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0) { result = -errno; goto out; }
    mem = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) { result = -errno; goto out; }
    /* mov ecx, iterations ; l: dec ecx ; jnz l ; hlt */
    unsigned char code[] = { 0x66, 0xb9, 0, 0, 0, 0, 0x66, 0x49, 0x75, 0xfc, 0xf4 };
    memcpy(code + 2, &iterations, 4);
    memcpy(mem, code, sizeof code);
    struct kvm_userspace_memory_region region = {
        .slot = 0, .guest_phys_addr = 0x1000, .memory_size = 0x1000, .userspace_addr = (unsigned long)mem,
    };
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) { result = -errno; goto out; }
    vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0) { result = -errno; goto out; }
    run_size = (size_t)ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED) { result = -errno; goto out; }
    struct kvm_sregs sregs;
    if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) { result = -errno; goto out; }
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) { result = -errno; goto out; }
    struct kvm_regs regs;
    memset(&regs, 0, sizeof regs);
    regs.rip = 0x1000;
    regs.rflags = 0x2;
    if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) { result = -errno; goto out; }
    long long start = now_us();
    for (int i = 0; i < 1000; i++) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0) {
            if (errno == EINTR) continue;
            result = -errno;
            goto out;
        }
        struct kvm_run *r = run;
        if (r->exit_reason == KVM_EXIT_HLT) { result = now_us() - start; goto out; }
        if (r->exit_reason != KVM_EXIT_INTR) { result = -EIO; goto out; }
    }
    result = -ETIMEDOUT;
out:
    if (run != MAP_FAILED) munmap(run, run_size);
    if (vcpu >= 0) close(vcpu);
    if (mem != MAP_FAILED) munmap(mem, 0x1000);
    if (vm >= 0) close(vm);
    if (kvm >= 0) close(kvm);
    return result;
}
