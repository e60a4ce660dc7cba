using System.Globalization;
using HybridServing.Contracts.Resources;
using HybridServing.KubeApiTestServer;
using HybridServing.TestKit;
using k8s;
using k8s.Models;

namespace HybridServing.Reliability.Tests;

/// <summary>
/// The Kubernetes home: the Kubernetes API test server (in this process, over real HTTP), MockEngines
/// with their sidecars as processes, each seeded as an engine pod (podIP 127.0.0.1, its sidecar's gRPC
/// port in the pod annotation), and one or more ControlPlane processes with <c>ControlPlane:Home=Kubernetes</c>
/// electing a leader through a Lease. No gateway: these trials are about the control path.
/// </summary>
public sealed class KubeStack : IAsyncDisposable
{
    public const string Ns = "trials";
    public const string LeaseNamespace = "hybridserving-system";
    public const string LeaseName = "hybridserving-controlplane";

    private readonly TempDirectory _dir = new("reliability-k8s");
    private readonly List<ChildProcess> _owned = [];

    private KubeStack(KubeApiServer server, TimeSpan leaseDuration)
    {
        Server = server;
        LeaseDuration = leaseDuration;
        Client = server.CreateClient();
        Directory.CreateDirectory(Repository);
    }

    public KubeApiServer Server { get; }
    public k8s.Kubernetes Client { get; }
    public TimeSpan LeaseDuration { get; }

    /// <summary>How often candidates try for the Lease and the leader renews it.</summary>
    public TimeSpan RetryPeriod => LeaseDuration / 6;
    public string Repository => _dir.Combine("adapters");
    public List<EngineNode> Nodes { get; } = [];
    public List<ChildProcess> ControlPlanes { get; } = [];

    /// <summary>Every adapter name in <paramref name="adapters"/> is written as a PEFT folder under <see cref="Repository"/>.</summary>
    public static async Task<KubeStack> StartAsync(int engines, int controlPlanes, IEnumerable<string> adapters, TimeSpan leaseDuration)
    {
        var server = await KubeApiServer.StartAsync();
        var stack = new KubeStack(server, leaseDuration);
        try
        {
            foreach (var a in adapters) TestAdapters.Write(stack.Repository, a, 8, LocalStack.BaseModel);
            server.Seed(new V1Namespace { ApiVersion = "v1", Kind = "Namespace", Metadata = new V1ObjectMeta { Name = Ns } });
            server.Seed(new V1Namespace { ApiVersion = "v1", Kind = "Namespace", Metadata = new V1ObjectMeta { Name = LeaseNamespace } });
            for (var i = 0; i < engines; i++)
            {
                var node = await EngineNode.StartAsync(i, stack._dir, stack.Repository, hostSlots: 16);
                stack._owned.Add(node.Engine);
                stack._owned.Add(node.Sidecar);
                stack.Nodes.Add(node);
                server.Seed(EnginePod(node, i));
            }
            for (var i = 0; i < controlPlanes; i++) await stack.StartControlPlaneAsync($"controlplane-{i}");
            return stack;
        }
        catch
        {
            await stack.DisposeAsync();
            throw;
        }
    }

    private static V1Pod EnginePod(EngineNode node, int i) => new()
    {
        ApiVersion = "v1",
        Kind = "Pod",
        Metadata = new V1ObjectMeta
        {
            Name = node.Engine.Name,
            NamespaceProperty = Ns,
            Labels = new Dictionary<string, string> { ["hybridserving.io/role"] = "engine", ["pool"] = "default" },
            Annotations = new Dictionary<string, string> { ["hybridserving.io/sidecar-grpc-port"] = node.SidecarGrpc.Port.ToString(CultureInfo.InvariantCulture) },
        },
        Spec = new V1PodSpec { NodeName = $"node-{i}", Containers = [new V1Container { Name = "engine", Image = "vllm" }] },
        Status = new V1PodStatus { Phase = "Running", PodIP = "127.0.0.1" },
    };

    private async Task StartControlPlaneAsync(string identity)
    {
        var http = Ports.GetFree();
        var renew = LeaseDuration * 2 / 3;
        var env = new Dictionary<string, string>
        {
            ["Kestrel__Endpoints__Http__Url"] = LocalStack.Url(http).ToString(),
            ["Kestrel__Endpoints__Grpc__Url"] = LocalStack.Url(Ports.GetFree()).ToString(),
            ["Kestrel__Endpoints__Grpc__Protocols"] = "Http2",
            ["ControlPlane__Home"] = "Kubernetes",
            ["ControlPlane__AllowedLocalRoots__0"] = Repository,
            ["ControlPlane__Kubernetes__ApiServerUrl"] = Server.Url,
            ["ControlPlane__Kubernetes__Identity"] = identity,
            ["ControlPlane__Kubernetes__LeaseNamespace"] = LeaseNamespace,
            ["ControlPlane__Kubernetes__LeaseDuration"] = LeaseDuration.ToString("c", CultureInfo.InvariantCulture),
            ["ControlPlane__Kubernetes__RenewDeadline"] = renew.ToString("c", CultureInfo.InvariantCulture),
            ["ControlPlane__Kubernetes__RetryPeriod"] = RetryPeriod.ToString("c", CultureInfo.InvariantCulture),
        };
        var cp = await ChildProcess.StartAsync(identity, LocalStack.Dll("ControlPlane"), [], LocalStack.Url(http), env);
        _owned.Add(cp);
        ControlPlanes.Add(cp);
    }

    /// <summary>A LoraAdapter in <see cref="Ns"/> naming local adapters of <see cref="Repository"/>.</summary>
    public LoraAdapter Adapter(string name, IEnumerable<string> adapters, int replicas) => new()
    {
        Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = Ns },
        Spec = new LoraAdapterSpec
        {
            BaseModel = LocalStack.BaseModel,
            AdapterSource = new AdapterSource { Type = AdapterSourceTypes.Local, Repository = Repository, Adapters = [.. adapters] },
            DeploymentConfig = new DeploymentConfig { Replicas = new ReplicaConfig { Min = replicas, Max = replicas } },
        },
    };

    public Task CreateAsync(LoraAdapter adapter) =>
        Client.CustomObjects.CreateNamespacedCustomObjectAsync(adapter, LoraAdapter.Group, LoraAdapter.Version, Ns, LoraAdapter.Plural);

    /// <summary>Replaces the spec's adapter list (read, change, update: a conflict is re-read and retried).</summary>
    public async Task SetAdaptersAsync(string name, IEnumerable<string> adapters)
    {
        var list = adapters.ToList();
        for (var attempt = 0; ; attempt++)
        {
            var current = Server.Get<LoraAdapter>(Ns, name)!;
            current.Spec.AdapterSource.Adapters = list;
            try
            {
                await Client.CustomObjects.ReplaceNamespacedCustomObjectAsync(current, LoraAdapter.Group, LoraAdapter.Version, Ns, LoraAdapter.Plural, name);
                return;
            }
            catch (k8s.Autorest.HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.Conflict && attempt < 5)
            {
            }
        }
    }

    public Task DeleteAsync(string name) =>
        Client.CustomObjects.DeleteNamespacedCustomObjectAsync(LoraAdapter.Group, LoraAdapter.Version, Ns, LoraAdapter.Plural, name);

    /// <summary>The Lease's holder, or null.</summary>
    public string? Leader => Server.Get<V1Lease>(LeaseNamespace, LeaseName)?.Spec?.HolderIdentity;

    /// <summary>
    /// The status says what the engines really hold: Ready, every declared adapter loaded on exactly
    /// <paramref name="replicas"/> pods, and each of those engines lists it in its own <c>/v1/models</c>.
    /// </summary>
    public async Task<bool> StatusIsTrueAsync(string name, IReadOnlyCollection<string> adapters, int replicas)
    {
        var o = Server.Get<LoraAdapter>(Ns, name);
        if (o?.Status is not { Phase: LoraAdapterPhases.Ready } status || status.ObservedGeneration != o.Metadata.Generation) return false;
        if (!(status.LoadedAdapters ?? []).Order(StringComparer.Ordinal).SequenceEqual(adapters.Order(StringComparer.Ordinal))) return false;
        var held = new Dictionary<string, HashSet<string>?>();
        foreach (var n in Nodes) held[n.Engine.Name] = await LocalStack.EngineAdaptersAsync(n.Engine);
        foreach (var a in adapters)
        {
            var pods = (status.PodAssignments ?? []).Where(p => p.Adapters.Contains(a)).Select(p => p.Pod).ToList();
            if (pods.Count != replicas) return false;
            if (!pods.All(p => held.TryGetValue(p, out var h) && h?.Contains(a) == true)) return false;
            // ...and no engine outside the status holds it.
            if (held.Count(h => h.Value?.Contains(a) == true) != replicas) return false;
        }
        return true;
    }

    /// <summary>No engine holds any of <paramref name="adapters"/>.</summary>
    public async Task<bool> NoEngineHoldsAsync(IEnumerable<string> adapters)
    {
        var names = adapters.ToList();
        foreach (var n in Nodes)
            if (await LocalStack.EngineAdaptersAsync(n.Engine) is not { } held || held.Overlaps(names)) return false;
        return true;
    }

    /// <summary>An object's status as JSON, for failure messages.</summary>
    public string Describe(string name) =>
        System.Text.Json.JsonSerializer.Serialize(Server.Get<LoraAdapter>(Ns, name)?.Status);

    public int Loads => Nodes.Sum(n => n.Loads);
    public int Unloads => Nodes.Sum(n => n.Unloads);

    public async ValueTask DisposeAsync()
    {
        for (var i = _owned.Count - 1; i >= 0; i--) await _owned[i].DisposeAsync();
        Client.Dispose();
        await Server.DisposeAsync();
        _dir.Dispose();
    }
}
