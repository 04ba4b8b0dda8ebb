"""kvmplace: choose where a KVM guest should live-migrate, and drive it there."""
