// Stand-in for the OmniRun agent as PID 1, to test scripts/build-initramfs.sh before the Swift
// agent exists. Like the Swift agent built with --static-swift-stdlib it links libc, libm,
// libstdc++ and libgcc_s dynamically. It does the agent's boot steps: mount proc/sys/devtmpfs,
// load /lib/modules/modules.order with finit_module (no parameters), mount /dev/vda (ext4) on
// /newroot, then prints the same marker lines as scripts/test-boot-busybox.sh's busybox /init
// (INIT-START, VPORT:, PYTHON:, BOOT-OK) and powers off.
//   g++ -O2 -o standin-agent standin-agent.cpp
#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

static std::string slurp(const std::string &path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

static void say(const std::string &line) { std::cout << line << std::endl; }

int main() {
  say("INIT-START");
  if (mount("proc", "/proc", "proc", 0, nullptr) != 0) say(std::string("MOUNT-PROC-FAILED: ") + strerror(errno));
  mount("sysfs", "/sys", "sysfs", 0, nullptr);
  mount("devtmpfs", "/dev", "devtmpfs", 0, nullptr);
  say("CMDLINE: " + slurp("/proc/cmdline"));
  say("GUEST-UPTIME-AT-INIT: " + slurp("/proc/uptime").substr(0, slurp("/proc/uptime").find(' ')));

  std::ifstream order("/lib/modules/modules.order");
  std::string name, loaded;
  while (std::getline(order, name)) {
    if (name.empty()) continue;
    std::string path = "/lib/modules/" + name;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || (syscall(SYS_finit_module, fd, "", 0) != 0 && errno != EEXIST))
      say("INSMOD-FAILED: " + name + ": " + strerror(errno));
    else
      loaded += name + " ";
    if (fd >= 0) close(fd);
  }
  say("MODULES-LOADED: " + loaded);

  struct stat st{};
  for (int i = 0; i < 500 && stat("/dev/vda", &st) != 0; i++) usleep(10000);
  if (mount("/dev/vda", "/newroot", "ext4", 0, nullptr) == 0)
    say("ROOT-MOUNTED: /dev/vda on /newroot");
  else
    say(std::string("ROOT-MOUNT-FAILED: ") + strerror(errno));

  if (DIR *d = opendir("/sys/class/virtio-ports")) {
    while (dirent *e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::string p = std::string("/sys/class/virtio-ports/") + e->d_name + "/name";
      say("VPORT: " + p + " = " + slurp(p));
    }
    closedir(d);
  }

  pid_t pid = fork();
  if (pid == 0) {
    if (chroot("/newroot") == 0 && chdir("/") == 0) {
      dup2(1, 2);
      std::cout << "PYTHON: " << std::flush;
      execl("/usr/bin/python3", "python3", "--version", (char *)nullptr);
    }
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  say("LIBM-CHECK: " + std::to_string(std::sqrt(2.0)));
  say("BOOT-OK");
  umount("/newroot");
  sync();
  reboot(RB_POWER_OFF);
  return 0;
}
