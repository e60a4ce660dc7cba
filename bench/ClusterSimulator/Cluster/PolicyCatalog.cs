using HybridServing.ClusterSimulator.Configuration;
using HybridServing.ClusterSimulator.Policies;

namespace HybridServing.ClusterSimulator.Cluster;

internal static class PolicyCatalog
{
    public static string Describe(string policy) => ServingPolicy.Create(policy, new SimulationOptions { Adapters = 1 }).Description;
}
