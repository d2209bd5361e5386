// kina-audit: append to, show, checkpoint and verify the tamper-evident audit
// log (docs/cli.md). The table of subcommands; each lives in its own header.
// None is recorded by run_tool: kina-audit writes the log itself (keygen
// records its key there, keys.hpp).
#include "append.hpp"
#include "checkpoint.hpp"
#include "keys.hpp"
#include "proof.hpp"
#include "show.hpp"
#include "verify.hpp"

int main(int argc, char** argv) {
  using namespace kina::audit_tool;
  return kina::run_tool<Options>(
      {kTool, std::string(kDescription),
       {{"append", "Append one event (from flags) or every AuditEvent record on stdin (one batch, one fsync); other "
                   "records are forwarded first. Prints AuditEntry records.",
         append_options, cmd_append},
        {"verify", "Verify the chain, the Merkle tree and every checkpoint; prints an AuditReport. Exit 0 intact, 1 "
                   "tampered, 66 no log.",
         verify_options, cmd_verify},
        {"checkpoint", "Sign the current tree head (C2SP tlog-checkpoint, Ed25519); kept in audit/checkpoints/, copy "
                       "it somewhere else too",
         checkpoint_options, cmd_checkpoint},
        {"keygen", "Create the Ed25519 signing key (sealed in the keystore) and print the verifier key (C2SP vkey) in "
                   "an AuditKey record",
         keygen_options, cmd_keygen},
        {"prove", "Print an RFC 9162 inclusion proof of entry SEQ against the latest checkpoint", prove_options,
         cmd_prove},
        {"verify-proof", "Check AuditProof records (stdin or --proof); exit 0 valid, 1 invalid", verify_proof_options,
         cmd_verify_proof},
        {"show", "Print events (AuditEntry records, or a table on a terminal)", show_options, cmd_show}},
       log_options, false},
      argc, argv);
}
