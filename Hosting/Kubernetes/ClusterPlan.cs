using Aspire.Hosting.ApplicationModel;

namespace HybridServing.Hosting.Kubernetes;

/// <summary>What the publisher takes from the Aspire app model: which resource is the ControlPlane,
/// the Gateway, and which engine pools there are, with the pools' cluster settings.</summary>
internal sealed record ClusterPlan(KubernetesPublishOptions Options, string ControlPlaneResource, string GatewayResource, IReadOnlyList<EnginePool> Pools)
{
    /// <summary>The Autoscaler resource, if the model has one, and the pools it scales.</summary>
    public string? Autoscaler { get; init; }
    public IReadOnlyList<EnginePool> AutoscaledPools { get; init; } = [];
    public string? AutoscalerName => Autoscaler is null ? null : ObjectName(Autoscaler);

    public string Namespace => Options.Namespace;
    public string ControlPlane => ObjectName(ControlPlaneResource);
    public string Gateway => ObjectName(GatewayResource);

    /// <summary>The Kubernetes object name of an app-model resource.</summary>
    public static string ObjectName(string resource) => $"hybridserving-{resource}";

    public static ClusterPlan From(DistributedApplicationModel model, KubernetesPublishOptions options)
    {
        IResource Single(HybridServingRole role) =>
            model.Resources.Where(r => Role(r) == role).ToList() switch
            {
                [var one] => one,
                [] => throw new InvalidOperationException($"The app model has no HybridServing {role}: add one before publishing."),
                var many => throw new InvalidOperationException($"The app model has {many.Count} HybridServing {role} resources ({string.Join(", ", many.Select(r => r.Name))}); the publisher writes one."),
            };

        var controlPlane = Single(HybridServingRole.ControlPlane);
        var gateway = Single(HybridServingRole.Gateway);
        if (gateway.Annotations.OfType<ControlPlaneReferenceAnnotation>().SingleOrDefault()?.ControlPlane != controlPlane)
            throw new InvalidOperationException($"Gateway '{gateway.Name}' is not wired to ControlPlane '{controlPlane.Name}' (WithControlPlane).");
        var pools = model.Resources
            .Where(r => Role(r) == HybridServingRole.Engine)
            .SelectMany(r => r.Annotations.OfType<EnginePoolMemberAnnotation>())
            .Select(m => m.Pool)
            .Distinct()
            .ToList();
        if (pools.Count == 0) throw new InvalidOperationException("The app model has no engine pool (AddEnginePool).");
        var autoscaler = model.Resources.Where(r => Role(r) == HybridServingRole.Autoscaler).ToList() switch
        {
            [] => null,
            [var one] => one,
            var many => throw new InvalidOperationException($"The app model has {many.Count} Autoscalers ({string.Join(", ", many.Select(r => r.Name))}); the publisher writes one."),
        };
        return new ClusterPlan(options, controlPlane.Name, gateway.Name, pools)
        {
            Autoscaler = autoscaler?.Name,
            // On the cluster the Autoscaler scales each pool's Deployment (laptop: sleeps engines).
            AutoscaledPools = autoscaler is null ? [] : [.. autoscaler.Annotations.OfType<EnginePoolMemberAnnotation>().Select(m => m.Pool).Distinct()],
        };
    }

    private static HybridServingRole? Role(IResource r) => r.Annotations.OfType<HybridServingComponentAnnotation>().SingleOrDefault()?.Role;
}
