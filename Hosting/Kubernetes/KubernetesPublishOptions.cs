namespace HybridServing.Hosting.Kubernetes;

/// <summary>Cluster-only settings of the published manifests (engine pools carry their own in <see cref="ClusterEnginePool"/>).</summary>
public sealed record KubernetesPublishOptions
{
    public string Namespace { get; init; } = "hybridserving";
    public string ImageRegistry { get; init; } = "ghcr.io/hybridserving";
    public string ImageTag { get; init; } = "0.1.0";
    public int GatewayReplicas { get; init; } = 2;
}
