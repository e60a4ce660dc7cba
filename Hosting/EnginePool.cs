using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;

namespace HybridServing.Hosting;

/// <summary>
/// An engine pool in the app model: for each engine a MockEngine (or any vLLM-compatible engine
/// project) and the EngineSidecar next to it, each a resource of its own.
/// </summary>
public sealed class EnginePool
{
    internal EnginePool(string name, EnginePoolOptions options, IReadOnlyList<IResourceBuilder<ProjectResource>> engines, IReadOnlyList<IResourceBuilder<ProjectResource>> sidecars)
    {
        Name = name;
        Options = options;
        Engines = engines;
        Sidecars = sidecars;
    }

    public string Name { get; }
    public EnginePoolOptions Options { get; }
    public IReadOnlyList<IResourceBuilder<ProjectResource>> Engines { get; }
    public IReadOnlyList<IResourceBuilder<ProjectResource>> Sidecars { get; }

    /// <summary>The node name sidecar <paramref name="index"/> reports (placement spreads replicas across nodes).</summary>
    public string NodeName(int index) => $"{Name}-node-{index}";
}
