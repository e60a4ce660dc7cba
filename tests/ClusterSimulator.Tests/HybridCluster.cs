using HybridServing.ClusterSimulator.Cluster;
using HybridServing.ClusterSimulator.Configuration;
using HybridServing.ClusterSimulator.Policies;
using HybridServing.ClusterSimulator.Workload;

namespace HybridServing.ClusterSimulator.Tests;

/// <summary>A simulated cluster with the HybridServing policy placed, every adapter's artifacts on every node.</summary>
internal static class HybridCluster
{
    public static (SimulatedCluster Cluster, HybridServingPolicy Policy) Start(SimulationOptions o, bool overflow = true)
    {
        var policy = new HybridServingPolicy(o, overflow);
        var cluster = new SimulatedCluster(o, new AdapterCatalog(o), policy, startSeconds: 0);
        foreach (var e in cluster.AllEngines)
            for (var a = 0; a < o.Adapters; a++) cluster.Stage(e, a);
        policy.Initialize(cluster);
        return (cluster, policy);
    }
}
