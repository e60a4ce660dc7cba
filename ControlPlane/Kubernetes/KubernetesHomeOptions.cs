using HybridServing.ControlPlane.Homes;
namespace HybridServing.ControlPlane.Kubernetes;

/// <summary>The <c>ControlPlane:Kubernetes</c> configuration section (used when <c>ControlPlane:Home</c> is <c>Kubernetes</c>).</summary>
internal sealed class KubernetesHomeOptions
{
    public const string Section = "ControlPlane:Kubernetes";

    /// <summary>The finalizer the control plane puts on every LoraAdapter so that deleting one unloads its adapters first.</summary>
    public const string Finalizer = "hybridserving.io/unload";

    /// <summary>
    /// The API server URL. Empty: in a pod, the in-cluster configuration (service account token);
    /// elsewhere, the current kubeconfig context.
    /// </summary>
    public string? ApiServerUrl { get; set; }

    /// <summary>Label selector (Kubernetes syntax) of the pods that are engines.</summary>
    public string EngineSelector { get; set; } = "hybridserving.io/role=engine";

    /// <summary>Pod annotation holding the sidecar's gRPC port.</summary>
    public string SidecarGrpcPortAnnotation { get; set; } = "hybridserving.io/sidecar-grpc-port";

    /// <summary>Sidecar gRPC port when a pod has no such annotation.</summary>
    public int DefaultSidecarGrpcPort { get; set; } = 9001;

    /// <summary>Whether replicas elect a leader; only the leader writes to the cluster and drives sidecars.</summary>
    public bool LeaderElection { get; set; } = true;

    /// <summary>
    /// True (default): followers report <c>Synced</c> too and reconcile (without actuating: the reconciler
    /// drives sidecars only on the leader) so that their router API serves a routing table to the gateways
    /// that reach them. False: followers stay idle until they lead. Status, finalizers and events are
    /// written by the leader only either way.
    /// </summary>
    public bool ReconcileOnFollowers { get; set; } = true;

    public string LeaseName { get; set; } = "hybridserving-controlplane";

    /// <summary>Namespace of the Lease; empty: the pod's namespace (<c>POD_NAMESPACE</c>, the service account's namespace file), else <c>default</c>.</summary>
    public string? LeaseNamespace { get; set; }

    /// <summary>This replica's identity in the Lease; empty: <c>POD_NAME</c>, else the host name.</summary>
    public string? Identity { get; set; }

    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(15);
    public TimeSpan RenewDeadline { get; set; } = TimeSpan.FromSeconds(10);
    public TimeSpan RetryPeriod { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Objects per list page.</summary>
    public int ListPageSize { get; set; } = 500;

    /// <summary>Server-side timeout of one watch (randomised up to twice this, as client-go does, so replicas do not reconnect in step).</summary>
    public TimeSpan WatchTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>A watch that delivers nothing (not even a bookmark) for this long is presumed dead and reopened.</summary>
    public TimeSpan WatchdogTimeout { get; set; } = TimeSpan.FromMinutes(3);

    /// <summary>How often every cached object is re-examined (finalizers, statuses, engines) even without events.</summary>
    public TimeSpan ResyncInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Retry delay bounds after an API error (list, watch, write).</summary>
    public TimeSpan BackoffInitial { get; set; } = TimeSpan.FromMilliseconds(500);
    public TimeSpan BackoffMax { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Mutating API calls (status, finalizers, events) per second on average, and the burst allowed.</summary>
    public double MutationsPerSecond { get; set; } = 10;
    public int MutationBurst { get; set; } = 20;

    /// <summary>The same event (object, reason) is not recorded again within this interval.</summary>
    public TimeSpan EventInterval { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Events waiting for the mutation budget; the oldest are dropped beyond this.</summary>
    public int EventQueueCapacity { get; set; } = 256;

    /// <summary>
    /// After start-up or on becoming the leader, statuses are held back until every engine's sidecar has
    /// reported once, or this long at most, so that a restart does not record a half picture (Pending,
    /// then Ready again) in every object.
    /// </summary>
    public TimeSpan StatusSettleTimeout { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>
    /// Opt-in (AIBrix-style per-adapter service discovery): the leader keeps, for every adapter name loaded on some engine, a
    /// selector-less Service and an EndpointSlice listing the pods that hold it, so that plain Kubernetes tools
    /// (kubectl, DNS, service meshes) see each adapter's engines. Off by default: it needs RBAC on services and
    /// endpointslices and writes objects users did not ask for.
    /// </summary>
    public bool AdapterServices { get; set; }

    /// <summary>Pod annotation holding the engine's (OpenAI-compatible) HTTP port, the adapter Services' target.</summary>
    public string EnginePortAnnotation { get; set; } = "hybridserving.io/engine-port";

    /// <summary>Engine HTTP port when a pod has no such annotation.</summary>
    public int DefaultEnginePort { get; set; } = 8000;

    /// <summary>Batches informer events before the snapshot is rebuilt (a burst of watch events becomes one Changed).</summary>
    public TimeSpan SnapshotDebounce { get; set; } = TimeSpan.FromMilliseconds(50);
}
