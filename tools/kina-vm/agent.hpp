// agent.hpp: the guest agent's entry point (agent.cpp), run by kina-init.
#pragma once

// Serves the host on the already opened virtio-serial port; returns only on a
// fatal error.
int agent_main(int port_fd);
