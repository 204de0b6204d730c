"""The shell that runs things: scenario loading, swarm launcher, simulated clock, reports."""
