using HybridServing.KubeApiTestServer.Resources;

namespace HybridServing.KubeApiTestServer;

/// <summary>How a <see cref="KubeApiServer"/> behaves; the defaults suit most tests.</summary>
public sealed class KubeApiServerOptions
{
    /// <summary>Clock for timestamps, bookmarks, watch timeouts and injected latency.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>
    /// Events kept per resource for watches that resume from a resourceVersion. Older ones are
    /// forgotten, and a watch from before them gets an ERROR event with a 410 Status.
    /// </summary>
    public int WatchHistoryCapacity { get; init; } = 1000;

    /// <summary>How often watches opened with <c>allowWatchBookmarks=true</c> get a BOOKMARK (a real server: about a minute).</summary>
    public TimeSpan BookmarkInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>When true, namespaced objects can only be created in a namespace that exists as a Namespace object.</summary>
    public bool RequireNamespaces { get; init; }

    /// <summary>
    /// When true, deleting a pod bound to a node leaves it Terminating for its grace period
    /// (<c>gracePeriodSeconds</c>, else <c>spec.terminationGracePeriodSeconds</c>, else 30 s, on
    /// <see cref="TimeProvider"/>), then removes it, as a kubelet would. By default pods go at once.
    /// </summary>
    public bool GracefulPodDeletion { get; init; }

    /// <summary>The resources served; <see cref="ResourceCatalog.Defaults"/> unless replaced. More can be registered later.</summary>
    public IReadOnlyList<ApiResource> Resources { get; init; } = ResourceCatalog.Defaults;

    /// <summary>The port to listen on; 0 (the default) picks a free one, which tests should use.</summary>
    public int Port { get; init; }

    /// <summary>The address to listen on; loopback unless a host exposes the server on purpose.</summary>
    public System.Net.IPAddress ListenAddress { get; init; } = System.Net.IPAddress.Loopback;

    /// <summary>
    /// When true the server speaks HTTPS, as a cluster's API server does, with a certificate for
    /// <see cref="ListenAddress"/> (and 127.0.0.1, localhost) signed by a CA made for this server
    /// (<see cref="KubeApiServer.CertificateAuthorityPem"/>: what a pod reads as its service account's
    /// <c>ca.crt</c>). <see cref="KubeApiServer.ClientConfiguration"/> and the kubeconfig trust that CA.
    /// </summary>
    public bool Https { get; init; }

    /// <summary>Seed for the generateName suffixes, for reproducible names.</summary>
    public int? RandomSeed { get; init; }
}
