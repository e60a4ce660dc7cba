using System.Text.Json;
using HybridServing.Contracts.Resources;
using HybridServing.ControlPlane.Kubernetes;
using HybridServing.KubeApiTestServer;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using HybridServing.ControlPlane.Homes;

namespace HybridServing.ControlPlane.Tests.Kubernetes;

/// <summary>Objects, options and waits shared by the Kubernetes home tests.</summary>
internal static class KubeHarness
{
    public const string Ns = "team-a";

    /// <summary>Short intervals so that every path (watchdog, backoff, resync) runs in well under a second.</summary>
    public static KubernetesHomeOptions FastOptions(Action<KubernetesHomeOptions>? tweak = null)
    {
        var o = new KubernetesHomeOptions
        {
            LeaderElection = false,
            ListPageSize = 2,
            WatchTimeout = TimeSpan.FromMinutes(5),
            WatchdogTimeout = TimeSpan.FromSeconds(30),
            ResyncInterval = TimeSpan.FromMinutes(5),
            BackoffInitial = TimeSpan.FromMilliseconds(50),
            BackoffMax = TimeSpan.FromMilliseconds(200),
            MutationsPerSecond = 1000,
            MutationBurst = 1000,
            EventInterval = TimeSpan.FromMinutes(5),
            SnapshotDebounce = TimeSpan.FromMilliseconds(10),
            LeaseDuration = TimeSpan.FromSeconds(1),
            RenewDeadline = TimeSpan.FromMilliseconds(700),
            RetryPeriod = TimeSpan.FromMilliseconds(150),
        };
        tweak?.Invoke(o);
        return o;
    }

    public static ILoggerFactory Loggers() => Environment.GetEnvironmentVariable("CP_TEST_LOG") == "1"
        ? LoggerFactory.Create(b => b.AddConsole().SetMinimumLevel(LogLevel.Debug))
        : NullLoggerFactory.Instance;

    public static KubeApi ApiFor(KubeApiServer server) => new(server.CreateClient());

    public static KubernetesHome Home(KubeApiServer server, KubernetesHomeOptions? options = null, IControlPlaneLeadership? leadership = null,
        IAdapterResidency? residency = null, string identity = "test-replica") =>
        new(ApiFor(server), options ?? FastOptions(), leadership ?? new SoleLeadership(), residency ?? new FakeResidency(), TimeProvider.System, Loggers(), identity);

    public static LoraAdapter Adapter(string name, string ns = Ns, string baseModel = "test/tiny") => new()
    {
        Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = ns },
        Spec = new LoraAdapterSpec
        {
            BaseModel = baseModel,
            AdapterSource = new AdapterSource { Type = AdapterSourceTypes.Local, Repository = "/adapters/" + name },
        },
    };

    public static V1Pod EnginePod(string name, string? ip = "10.0.0.7", string phase = "Running", string? port = "9100",
        string ns = Ns, string role = "engine", string node = "node-1")
    {
        var pod = new V1Pod
        {
            ApiVersion = "v1",
            Kind = "Pod",
            Metadata = new V1ObjectMeta
            {
                Name = name,
                NamespaceProperty = ns,
                Labels = new Dictionary<string, string> { ["hybridserving.io/role"] = role, ["pool"] = "a" },
                Annotations = port is null ? null : new Dictionary<string, string> { ["hybridserving.io/sidecar-grpc-port"] = port },
            },
            Spec = new V1PodSpec { NodeName = node, Containers = [new V1Container { Name = "engine", Image = "vllm" }] },
            Status = new V1PodStatus { Phase = phase, PodIP = ip },
        };
        return pod;
    }

    public static LoraAdapterStatus Status(string phase, params string[] loaded) => new()
    {
        Phase = phase,
        ObservedGeneration = 1,
        LoadedAdapters = [.. loaded],
        Adapters = [.. loaded.Select(n => new DiscoveredAdapterStatus { Name = n, Uri = "file:///adapters/" + n, Rank = 8, SizeBytes = 1024, Digest = "sha256:00" })],
        Conditions =
        [
            new V1Condition
            {
                Type = LoraAdapterConditionTypes.Ready, Status = phase == LoraAdapterPhases.Ready ? "True" : "False",
                Reason = phase == LoraAdapterPhases.Ready ? LoraAdapterReasons.AllLoaded : LoraAdapterReasons.Loading,
                Message = $"{loaded.Length} loaded", ObservedGeneration = 1, LastTransitionTime = DateTime.UtcNow,
            },
        ],
    };

    /// <summary>The object as the reconciler hands it to WriteStatusAsync: metadata + spec + a status.</summary>
    public static LoraAdapter WithStatus(LoraAdapter declared, LoraAdapterStatus status)
    {
        var copy = KubernetesJson.Deserialize<LoraAdapter>(KubernetesJson.Serialize(declared));
        copy.Status = status;
        return copy;
    }

    public static async Task WaitUntilAsync(Func<bool> condition, string what, double seconds = 10)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"timed out after {seconds} s waiting until {what}");
            await Task.Delay(10);
        }
    }

    public static async Task WaitUntilAsync(Func<Task<bool>> condition, string what, double seconds = 10)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"timed out after {seconds} s waiting until {what}");
            await Task.Delay(10);
        }
    }

    public static string? Name(JsonElement obj) => obj.GetProperty("metadata").GetProperty("name").GetString();
}

/// <summary>Residency set by the test (what the sidecars would report).</summary>
internal sealed class FakeResidency : IAdapterResidency
{
    private volatile IReadOnlySet<string> _names = new HashSet<string>(StringComparer.Ordinal);

    public event Action? Changed;

    public IReadOnlySet<string> ResidentAdapters() => _names;

    /// <summary>Whether every engine has reported (the tests that do not care say yes).</summary>
    public bool AllReported { get; set; } = true;

    public bool Settled(IReadOnlyList<HybridServing.ControlPlane.Homes.EngineEndpoint> engines) => AllReported;

    public void Report()
    {
        AllReported = true;
        Changed?.Invoke();
    }

    public void Set(params string[] names)
    {
        _names = names.ToHashSet(StringComparer.Ordinal);
        Changed?.Invoke();
    }
}

/// <summary>Leadership the test flips.</summary>
internal sealed class ManualLeadership(bool isLeader) : IControlPlaneLeadership
{
    private volatile bool _isLeader = isLeader;

    public bool IsLeader => _isLeader;
    public string? Leader => _isLeader ? "me" : "other";
    public event Action? LeadershipChanged;

    public void Set(bool value)
    {
        _isLeader = value;
        LeadershipChanged?.Invoke();
    }
}
