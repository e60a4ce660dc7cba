using HybridServing.Contracts.Resources;
using HybridServing.ControlPlane.Reconciliation;

namespace HybridServing.ControlPlane.Tests.Reconciliation;

/// <summary><c>spec.deploymentConfig.replicas</c> read into placement bounds (the cluster simulator reads it the same way).</summary>
public sealed class ReplicaBoundsTests
{
    [Fact]
    public void The_replicas_spec_gives_min_and_max()
    {
        Assert.Equal((1, int.MaxValue), Reconciler.ReplicaBounds(new ReplicaConfig { All = true }));
        Assert.Equal((1, 1), Reconciler.ReplicaBounds(null));
        Assert.Equal((2, 5), Reconciler.ReplicaBounds(new ReplicaConfig { Min = 2, Max = 5 }));
        Assert.Equal((1, 3), Reconciler.ReplicaBounds(new ReplicaConfig { Max = 3 }));
        Assert.Equal((2, 2), Reconciler.ReplicaBounds(new ReplicaConfig { Min = 2 }));
        Assert.Equal((0, 0), Reconciler.ReplicaBounds(new ReplicaConfig { Max = 0 }));
    }
}
