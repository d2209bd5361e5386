// kina-vm: boot node VMs from a root filesystem, run commands in them, copy
// files in and out, connect them on a cluster network, stop and start them
// again, and tear them down (docs/cli.md). The table of subcommands; they
// live in commands.hpp. A refused command line of a mutating one is recorded
// too, and so is a kernel registration (not a read of the kernel record).
#include "commands.hpp"

int main(int argc, char** argv) {
  using namespace kina::vm;
  if (auto rc = supervise_if_asked(argc, argv)) return *rc;
  return kina::run_tool<Options>(
      {kTool, std::string(kDescription),
       {{"kernel", "Register the guest kernel and print its Kernel record", kernel_options, cmd_kernel, "kernel",
         kernel_registers},
        {"boot", "Boot a machine and print its Machine record once it is ready (--ready: its agent answers, or systemd "
                 "is running); without --rootfs/--disk, one machine per Rootfs record on stdin (NAME, NAME2, ...; all "
                 "or nothing)",
         boot_options, cmd_boot, "boot"},
        {"exec", "Run a command in a machine; exits with its status", exec_options, cmd_exec, "exec"},
        {"cp", "Copy files or directories: cp SRC NAME:DST, cp NAME:SRC DST (mode and owner kept)", cp_options, cmd_cp,
         "cp"},
        {"ls", "Print a Machine record per machine", add_cluster, cmd_ls},
        {"inspect", "Print one machine's Machine record", machine_options, cmd_inspect},
        {"logs", "Print a machine's console", logs_options, cmd_logs},
        {"stop", "Power a machine off cleanly; force it after --timeout. Its disk and address are kept (kina-vm start "
                 "brings it back)",
         stop_options, cmd_stop, "stop"},
        {"start", "Start a stopped machine again as it was booted (same disk, address, MACs, identity, ports, mounts, "
                  "CPUs, memory) and print its Machine record once it is ready (--ready, as boot); a running machine "
                  "is left alone (exit 0). A failed or interrupted start leaves the machine stopped, never removed; "
                  "73: its address is now leased to another machine; 75: another start of it runs",
         start_options, cmd_start, "start"},
        {"rm", "Remove a stopped machine (-f: stop it first) and all its files", rm_options, cmd_rm, "rm"},
        {"network", "Cluster networks (qemu: one vde_switch each; apple: one `container network` each)",
         {{"create", "Start a network and print its Network record", network_create_options, cmd_network_create,
           "network-create"},
          {"rm", "Stop and remove a network", network_rm_options, cmd_network_rm, "network-rm"},
          {"ls", "Print a Network record per network", add_cluster, cmd_network_ls}}}},
       nullptr, true, refused_target, refused_cluster},
      argc, argv);
}
