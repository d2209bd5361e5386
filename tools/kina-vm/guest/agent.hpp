// agent.hpp: the guest agent's entry point (agent.cpp), run by kina-init.
// Guest code (tools/kina-vm/guest/): static, libc only, no exceptions (kina-init
// is linked -static -fno-exceptions); the host shares wire.hpp and transfer.hpp.
#pragma once

// Serves the host on the already opened virtio-serial port; returns only on a
// fatal error.
int agent_main(int port_fd);
