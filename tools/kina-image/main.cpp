// kina-image: pull, import, build, push, verify and unpack OCI images
// (docs/cli.md, "kina-image"). The table of subcommands; each lives in its own
// header. A refused command line of a mutating one is recorded too.
#include "build_cmd.hpp"
#include "store_cmd.hpp"
#include "transfer_cmd.hpp"
#include "unpack_cmd.hpp"

int main(int argc, char** argv) {
  using namespace kina::image;
  return kina::run_tool<Options>(
      {kTool, std::string(kDescription),
       {{"pull", "Pull REF from its registry into the store; prints an Image record", pull_options, cmd_pull, "pull"},
        {"import", "Import a docker save archive, an OCI layout directory or an OCI layout tar", import_options,
         cmd_import, "import"},
        {"unpack", "Unpack an image into a root directory and/or an ext4 disk; prints Rootfs records", unpack_options,
         cmd_unpack, "unpack"},
        {"build", "Build an OCI image from a directory tree into the store, deterministically; prints an Image record",
         build_options, cmd_build, "build"},
        {"push", "Push REF (or DIGEST) from the store to its registry, or to --to DEST; prints an Image record",
         push_options, cmd_push, "push"},
        {"list", "Print an Image record for every reference in the store", nullptr, cmd_list},
        {"inspect", "Print the Image record of REF or DIGEST", inspect_options, cmd_inspect},
        {"rm", "Remove REF (or every reference to DIGEST) and the blobs nothing else uses", image_argument, cmd_rm, "rm"},
        {"export", "Write REF as an OCI layout tar or a docker save tar (ctr images import reads both)", export_options,
         cmd_export, "export"}},
       store_options, true, [](const Options& o) { return o.target; }},
      argc, argv);
}
