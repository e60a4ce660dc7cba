using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using HybridServing.Contracts.Peft;
using HybridServing.Contracts.Resources;
using HybridServing.ControlPlane.Kubernetes;
using HybridServing.ControlPlane.Tests.Infrastructure;
using HybridServing.KubeApiTestServer;
using HybridServing.TestKit;
using k8s;
using k8s.Models;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using static HybridServing.ControlPlane.Tests.Kubernetes.KubeHarness;

namespace HybridServing.ControlPlane.Tests.Kubernetes;

/// <summary>
/// The whole ControlPlane (its own composition root plus <c>AddKubernetesHome</c>) against the
/// Kubernetes API test server and in-test sidecars, all over real HTTP and gRPC.
/// </summary>
public sealed class KubernetesHomeEndToEndTests(S3rverFixture s3) : IAsyncLifetime, IClassFixture<S3rverFixture>
{
    private readonly TempDirectory _dir = new("cpk8s");
    private readonly List<FakeSidecar> _sidecars = [];
    private KubeApiServer _server = null!;
    private WebApplication? _app;

    public async Task InitializeAsync()
    {
        _server = await KubeApiServer.StartAsync();
        foreach (var name in new[] { "sql-a", "sql-b" }) TestAdapters.Write(_dir.Path, name, 8);
        for (var i = 0; i < 2; i++)
        {
            var sidecar = new FakeSidecar($"vllm-{i}", $"node-{i}");
            await sidecar.StartAsync();
            _sidecars.Add(sidecar);
            _server.Seed(EnginePod(sidecar.Name, ip: "127.0.0.1", port: sidecar.Url.Port.ToString(), node: $"node-{i}"));
        }
    }

    public async Task DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
        foreach (var s in _sidecars) await s.DisposeAsync();
        await _server.DisposeAsync();
        _dir.Dispose();
    }

    private async Task<WebApplication> StartControlPlaneAsync()
    {
        var builder = WebApplication.CreateBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Kestrel:Endpoints:Http:Url"] = $"http://127.0.0.1:{Ports.GetFree()}",
            ["Kestrel:Endpoints:Grpc:Url"] = $"http://127.0.0.1:{Ports.GetFree()}",
            ["Kestrel:Endpoints:Grpc:Protocols"] = "Http2",
            ["ControlPlane:Home"] = "Kubernetes",
            ["ControlPlane:BackoffInitial"] = "00:00:01",
            ["ControlPlane:ReconnectInitial"] = "00:00:00.100",
            ["ControlPlane:ReconnectMax"] = "00:00:00.500",
            ["ControlPlane:Kubernetes:ApiServerUrl"] = _server.Url,
            ["ControlPlane:Kubernetes:LeaseNamespace"] = "hybridserving-system",
            ["ControlPlane:Kubernetes:Identity"] = "controlplane-0",
            ["ControlPlane:Kubernetes:LeaseDuration"] = "00:00:02",
            ["ControlPlane:Kubernetes:RenewDeadline"] = "00:00:01",
            ["ControlPlane:Kubernetes:RetryPeriod"] = "00:00:00.200",
            ["ControlPlane:Kubernetes:SnapshotDebounce"] = "00:00:00.010",
        });
        builder.Logging.ClearProviders();
        if (Environment.GetEnvironmentVariable("CP_TEST_LOG") == "1") builder.Logging.AddConsole();
        builder.AddServiceDefaults();
        // ControlPlane:Home=Kubernetes: the composition root selects the Kubernetes home itself.
        builder.AddControlPlane();
        var app = builder.Build();
        app.MapControlPlane();
        await app.StartAsync();
        return app;
    }

    [Fact]
    public async Task Declared_in_the_cluster_loaded_on_engine_pods_reported_in_status_and_unloaded_before_deletion()
    {
        using var client = _server.CreateClient();
        var adapter = Adapter("sql");
        adapter.Spec.AdapterSource = new AdapterSource { Type = AdapterSourceTypes.Local, Repository = _dir.Path, Pattern = "sql-*" };
        adapter.Spec.DeploymentConfig = new DeploymentConfig { Replicas = new ReplicaConfig { All = true } };
        await client.CustomObjects.CreateNamespacedCustomObjectAsync(adapter, LoraAdapter.Group, LoraAdapter.Version, Ns, LoraAdapter.Plural);

        _app = await StartControlPlaneAsync();
        Assert.IsType<KubernetesHome>(_app.Services.GetRequiredService<HybridServing.ControlPlane.Homes.IControlPlaneHome>());

        // Ready, with both adapters on both engine pods, through the status subresource.
        await WaitUntilAsync(() => _server.Get<LoraAdapter>(Ns, "sql")?.Status?.Phase == LoraAdapterPhases.Ready, "the LoraAdapter is Ready", seconds: 20);
        var ready = _server.Get<LoraAdapter>(Ns, "sql")!;
        Assert.Equal(["sql-a", "sql-b"], ready.Status!.LoadedAdapters!);
        Assert.Equal(["vllm-0", "vllm-1"], ready.Status.PodAssignments!.Select(p => p.Pod));
        Assert.Equal(["node-0", "node-1"], ready.Status.PodAssignments!.Select(p => p.Node));
        Assert.Equal(1, ready.Status.ObservedGeneration);
        Assert.Contains(KubernetesHomeOptions.Finalizer, ready.Metadata.Finalizers!);
        Assert.All(_sidecars, s => Assert.Equal(["sql-a", "sql-b"], s.Loaded));
        Assert.Equal("controlplane-0", _server.Get<V1Lease>("hybridserving-system", "hybridserving-controlplane")!.Spec.HolderIdentity);
        Assert.All(_server.Requests.Where(r => r.Resource == "loraadapters" && r.IsMutating && r.Verb != "create"), r => Assert.True(r.Subresource == "status" || r.Verb == "patch", $"{r.Verb} {r.Path}"));

        // Settled: further passes write nothing.
        var settled = _server.Requests.Count(r => r.IsMutating && r.Resource == "loraadapters");
        await Task.Delay(300);
        Assert.Equal(settled, _server.Requests.Count(r => r.IsMutating && r.Resource == "loraadapters"));

        // An engine pod is deleted: its engine leaves and the status follows.
        await client.CoreV1.DeleteNamespacedPodAsync("vllm-1", Ns, new V1DeleteOptions { GracePeriodSeconds = 0 });
        await WaitUntilAsync(() => _server.Get<LoraAdapter>(Ns, "sql")!.Status!.PodAssignments!.Select(p => p.Pod).SequenceEqual(["vllm-0"]), "the status shows one engine", seconds: 20);

        // Delete: the adapters are unloaded from the engine, then the finalizer goes and with it the object.
        await client.CustomObjects.DeleteNamespacedCustomObjectAsync(LoraAdapter.Group, LoraAdapter.Version, Ns, LoraAdapter.Plural, "sql");
        await WaitUntilAsync(() => _server.Get<LoraAdapter>(Ns, "sql") is null, "the LoraAdapter is gone", seconds: 20);
        Assert.Empty(_sidecars[0].Loaded);
        Assert.Empty(_sidecars[0].Desired);
        // The event follows the finalizer's removal (best effort, after the writes).
        await WaitUntilAsync(() => _server.List<Eventsv1Event>(Ns).Any(e => e.Reason == "Unloaded" && e.Regarding.Name == "sql"), "the Unloaded event");
        Assert.Contains(_server.List<Eventsv1Event>(Ns), e => e.Reason == LoraAdapterReasons.AllLoaded && e.Regarding.Name == "sql");
    }

    [Fact]
    public async Task A_LoraAdapter_created_with_kubectl_is_reconciled_and_its_status_shows_in_kubectl_get_wide()
    {
        using var kubectl = new Kubectl(_server)
        {
            WorkingDirectory = HybridServing.Contracts.Resources.CrdGenerator.FindRepositoryRoot(AppContext.BaseDirectory) ?? throw new InvalidOperationException("repository root not found"),
        };
        // The CRD as committed in k8s/ (generated from Contracts): it gives the server lora's short name and printer columns.
        await kubectl.RunAsync("apply", "-f", "k8s/crds/");
        var adapter = Adapter("sql");
        adapter.ApiVersion = LoraAdapter.ApiVersionValue;
        adapter.Kind = LoraAdapter.KindName;
        adapter.Spec.AdapterSource = new AdapterSource { Type = AdapterSourceTypes.Local, Repository = _dir.Path, Pattern = "sql-*" };
        adapter.Spec.DeploymentConfig = new DeploymentConfig { Replicas = new ReplicaConfig { All = true } };
        var manifest = Path.Combine(_dir.Path, "sql.yaml");
        await File.WriteAllTextAsync(manifest, KubernetesYaml.Serialize(adapter));
        await kubectl.RunAsync("apply", "-f", manifest);

        _app = await StartControlPlaneAsync();

        await WaitUntilAsync(() => _server.Get<LoraAdapter>(Ns, "sql")?.Status?.Phase == LoraAdapterPhases.Ready, "the LoraAdapter is Ready", seconds: 20);
        var wide = await kubectl.RunAsync("get", "lora", "-n", Ns, "-o", "wide");
        Assert.Matches(@"^NAME\s+BASE MODEL\s+SOURCE\s+PHASE\s+READY\s+REASON\s+AGE\n", wide);
        Assert.Matches($@"\nsql\s+test/tiny\s+local\s+Ready\s+True\s+{LoraAdapterReasons.AllLoaded}\s+\d+s\n", wide);
        var loaded = await kubectl.RunAsync("get", "lora", "sql", "-n", Ns, "-o", "jsonpath={.status.loadedAdapters}");
        Assert.Equal("[\"sql-a\",\"sql-b\"]", loaded);
    }

    [Fact]
    public async Task A_restarted_control_plane_rebuilds_its_picture_from_the_cluster_and_writes_nothing_new()
    {
        using var client = _server.CreateClient();
        var adapter = Adapter("sql");
        adapter.Spec.AdapterSource = new AdapterSource { Type = AdapterSourceTypes.Local, Repository = _dir.Path, Adapters = ["sql-a"] };
        adapter.Spec.DeploymentConfig = new DeploymentConfig { Replicas = new ReplicaConfig { All = true } };
        await client.CustomObjects.CreateNamespacedCustomObjectAsync(adapter, LoraAdapter.Group, LoraAdapter.Version, Ns, LoraAdapter.Plural);
        _app = await StartControlPlaneAsync();
        await WaitUntilAsync(() => _server.Get<LoraAdapter>(Ns, "sql")?.Status?.Phase == LoraAdapterPhases.Ready, "Ready", seconds: 20);
        await _app.StopAsync();
        await _app.DisposeAsync();
        var before = _server.Requests.Count(r => r.IsMutating && r.Resource == "loraadapters");
        var ensureCalls = _sidecars.Select(s => s.EnsureCalls.Count).ToList();

        var seen = new List<string>();
        using var stopSpy = new CancellationTokenSource();
        var spy = Task.Run(async () =>
        {
            while (!stopSpy.IsCancellationRequested)
            {
                var j = k8s.KubernetesJson.Serialize(_server.Get<LoraAdapter>(Ns, "sql")!.Status);
                lock (seen) if (seen.Count == 0 || seen[^1] != j) seen.Add(j);
                await Task.Delay(2);
            }
        });
        _app = await StartControlPlaneAsync();
        var home = (KubernetesHome)_app.Services.GetRequiredService<HybridServing.ControlPlane.Homes.IControlPlaneHome>();
        var reconciler = _app.Services.GetRequiredService<HybridServing.ControlPlane.Reconciliation.Reconciler>();
        await WaitUntilAsync(() => home.StatusSkips >= 1 && reconciler.Model.Engines.All(e => e.Adapters.ContainsKey("sql-a")), "a pass compared the status with the stored one", seconds: 20);

        // No status flap (Pending from a half picture, then Ready again): statuses wait for the sidecars' first reports.
        var writes = _server.Requests.Where(r => r.IsMutating && r.Resource == "loraadapters").Skip(before).ToList();
        stopSpy.Cancel();
        await spy;
        Assert.True(writes.Count == 0, "after the restart: " + string.Join("; ", writes.Select(w => $"{w.Verb} {w.Path}")) + "\n" + string.Join("\n", seen));
        Assert.Equal(0, home.StatusWrites);
        // The sidecars were told the same set again (they forgot nothing): no unload, no second load.
        var after = _sidecars.SelectMany((s, i) => s.EnsureCalls.Skip(ensureCalls[i])).ToList();
        Assert.All(after, call => Assert.Contains(call.Adapters, a => a.Name == "sql-a"));
        Assert.All(_sidecars, s => Assert.Equal(["sql-a"], s.Loaded));
    }

    [Fact]
    public async Task CredentialsSecretRef_is_read_from_the_adapters_namespace_through_the_API_and_passed_to_sidecars_as_a_reference()
    {
        using var s3Client = new AmazonS3Client(new BasicAWSCredentials("S3RVER", "S3RVER"),
            new AmazonS3Config { ServiceURL = s3.ServiceUrl.ToString(), ForcePathStyle = true, AuthenticationRegion = "us-east-1" });
        var src = TestAdapters.Write(_dir.Path, "priv-a", 8);
        foreach (var file in new[] { PeftAdapter.ConfigFileName, PeftAdapter.SafetensorsFileName })
            await s3Client.PutObjectAsync(new PutObjectRequest
            {
                BucketName = S3rverFixture.Bucket, Key = $"k8s-private/priv-a/{file}", FilePath = Path.Combine(src, file), UseChunkEncoding = false,
            });
        V1Secret Credentials(string ns, string accessKey) => new()
        {
            Metadata = new V1ObjectMeta { Name = "s3-creds", NamespaceProperty = ns },
            StringData = new Dictionary<string, string>
            {
                ["AWS_ACCESS_KEY_ID"] = accessKey, ["AWS_SECRET_ACCESS_KEY"] = "S3RVER", ["AWS_ENDPOINT_URL"] = s3.ServiceUrl.ToString(), ["AWS_REGION"] = "us-east-1",
            },
        };
        using var client = _server.CreateClient();
        await client.CoreV1.CreateNamespaceAsync(new V1Namespace { Metadata = new V1ObjectMeta { Name = "team-b" } });
        await client.CoreV1.CreateNamespacedSecretAsync(Credentials(Ns, "S3RVER"), Ns);
        // The same name in another namespace holds keys s3rver refuses: only the adapter's own namespace may count.
        await client.CoreV1.CreateNamespacedSecretAsync(Credentials("team-b", "NOT-THE-KEY"), "team-b");
        LoraAdapter Private(string name, string ns) => new()
        {
            Metadata = new V1ObjectMeta { Name = name, NamespaceProperty = ns },
            Spec = new LoraAdapterSpec
            {
                BaseModel = "test/tiny",
                AdapterSource = new AdapterSource { Type = AdapterSourceTypes.S3, Repository = $"{S3rverFixture.Bucket}/k8s-private", Adapters = ["priv-a"] },
                CredentialsSecretRef = new SecretReference { Name = "s3-creds" },
            },
        };
        await client.CustomObjects.CreateNamespacedCustomObjectAsync(Private("private", Ns), LoraAdapter.Group, LoraAdapter.Version, Ns, LoraAdapter.Plural);
        _app = await StartControlPlaneAsync();

        await WaitUntilAsync(() => _server.Get<LoraAdapter>(Ns, "private")?.Status?.Phase == LoraAdapterPhases.Ready, "the private LoraAdapter is Ready", seconds: 30);
        var sent = _sidecars.SelectMany(s => s.EnsureCalls).SelectMany(c => c.Adapters).First(a => a.Name == "priv-a");
        Assert.Equal($"{Ns}/s3-creds", sent.CredentialsSecret);
        Assert.Equal($"s3://{S3rverFixture.Bucket}/k8s-private/priv-a", sent.Source);
        Assert.Contains(_server.Requests, r => r.Resource == "secrets" && r.Verb == "get" && r.Path.Contains($"/namespaces/{Ns}/secrets/s3-creds"));
        Assert.DoesNotContain(_server.Requests, r => r.Resource == "secrets" && r.Verb is "list" or "watch");

        // team-b's Secret of the same name is refused by the store: the status says so, with the source's words.
        await client.CustomObjects.DeleteNamespacedCustomObjectAsync(LoraAdapter.Group, LoraAdapter.Version, Ns, LoraAdapter.Plural, "private");
        await WaitUntilAsync(() => _server.Get<LoraAdapter>(Ns, "private") is null, "the first LoraAdapter is gone", seconds: 20);
        await client.CustomObjects.CreateNamespacedCustomObjectAsync(Private("private", "team-b"), LoraAdapter.Group, LoraAdapter.Version, "team-b", LoraAdapter.Plural);
        await WaitUntilAsync(() => _server.Get<LoraAdapter>("team-b", "private")?.Status?.Conditions?.Any(c => c.Type == "Ready" && c.Status == "False") == true,
            "team-b's adapter is not Ready", seconds: 20);
        Assert.NotEqual(LoraAdapterPhases.Ready, _server.Get<LoraAdapter>("team-b", "private")!.Status!.Phase);

        // A Secret that does not exist: CredentialsMissing naming it, and no value anywhere in the status.
        var missing = Private("missing", Ns);
        missing.Spec.CredentialsSecretRef = new SecretReference { Name = "no-such-secret" };
        await client.CustomObjects.CreateNamespacedCustomObjectAsync(missing, LoraAdapter.Group, LoraAdapter.Version, Ns, LoraAdapter.Plural);
        await WaitUntilAsync(() => _server.Get<LoraAdapter>(Ns, "missing")?.Status?.Conditions?.Any(c => c.Type == "Ready") == true, "the missing-secret condition", seconds: 20);
        var condition = _server.Get<LoraAdapter>(Ns, "missing")!.Status!.Conditions!.Single(c => c.Type == "Ready");
        Assert.Equal(("False", LoraAdapterReasons.CredentialsMissing), (condition.Status, condition.Reason));
        Assert.Contains($"secret '{Ns}/no-such-secret' named by spec.credentialsSecretRef does not exist", condition.Message);
        Assert.DoesNotContain("S3RVER", KubernetesJson.Serialize(_server.List<LoraAdapter>(null)));
    }

    [Fact]
    public async Task Declared_memory_and_adapter_size_constrain_placement_with_budgets_from_the_engines_own_configuration()
    {
        // Neither sidecar reports an adapter memory budget (the manifests and the AppHost set none); engine 0's
        // adapter cache is smaller than any adapter.
        _sidecars[0].Info.CacheBudgetBytes = 1024;
        _sidecars[1].Info.CacheBudgetBytes = 1L << 30;
        TestAdapters.Write(_dir.Path, "big-a", 8);
        using var client = _server.CreateClient();
        var sql = Adapter("sql");
        sql.Spec.AdapterSource = new AdapterSource { Type = AdapterSourceTypes.Local, Repository = _dir.Path, Pattern = "sql-*" };
        sql.Spec.DeploymentConfig = new DeploymentConfig { Replicas = new ReplicaConfig { All = true } };
        var big = Adapter("big");
        big.Spec.AdapterSource = new AdapterSource { Type = AdapterSourceTypes.Local, Repository = _dir.Path, Pattern = "big-*" };
        big.Spec.SchedulingConfig = new SchedulingConfig { ResourceRequirements = new AdapterResourceRequirements { Memory = "1Ti" } };
        foreach (var a in new[] { sql, big })
            await client.CustomObjects.CreateNamespacedCustomObjectAsync(a, LoraAdapter.Group, LoraAdapter.Version, Ns, LoraAdapter.Plural);
        _app = await StartControlPlaneAsync();

        // Storage: only the engine whose cache holds the files gets them.
        await WaitUntilAsync(() => _server.Get<LoraAdapter>(Ns, "sql")?.Status?.Phase == LoraAdapterPhases.Ready, "sql is Ready", seconds: 20);
        Assert.Equal(["vllm-1"], _server.Get<LoraAdapter>(Ns, "sql")!.Status!.PodAssignments!.Select(p => p.Pod));
        Assert.Empty(_sidecars[0].Desired);

        // Memory: 4 slots of a rank-16 adapter of this base model (twice the size of these rank-8 ones) is far below 1Ti.
        await WaitUntilAsync(() => _server.Get<LoraAdapter>(Ns, "big")?.Status?.Conditions?.Any(c => c.Type == "Ready" && c.Status == "False") == true, "big is refused", seconds: 20);
        var condition = _server.Get<LoraAdapter>(Ns, "big")!.Status!.Conditions!.Single(c => c.Type == "Ready");
        Assert.Equal(LoraAdapterReasons.AdapterIncompatible, condition.Reason);
        Assert.Matches(@"needs 1099511627776 bytes of adapter memory; the largest budget among compatible engines is \d+ bytes", condition.Message);
        Assert.DoesNotContain("big-a", _sidecars[1].Desired);
    }
}
