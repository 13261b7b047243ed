"""One module per Rendezvous role: decoy, model runner, rendezvous; each registers Faust agents."""
