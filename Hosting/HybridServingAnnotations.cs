using Aspire.Hosting.ApplicationModel;

namespace HybridServing.Hosting;

/// <summary>Which HybridServing component a resource of the app model is; the Kubernetes publisher reads it.</summary>
public enum HybridServingRole
{
    ControlPlane,
    Gateway,
    Engine,
    Sidecar,
    Autoscaler,
}

/// <summary>Marks a resource as a HybridServing component.</summary>
public sealed record HybridServingComponentAnnotation(HybridServingRole Role) : IResourceAnnotation;

/// <summary>An engine or sidecar resource's engine pool and its index in it.</summary>
public sealed record EnginePoolMemberAnnotation(EnginePool Pool, int Index) : IResourceAnnotation;

/// <summary>The ControlPlane a gateway (or autoscaler) talks to.</summary>
public sealed record ControlPlaneReferenceAnnotation(IResource ControlPlane) : IResourceAnnotation;
