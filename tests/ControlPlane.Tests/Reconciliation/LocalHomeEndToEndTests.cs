using System.Net;
using System.Text.Json;
using Grpc.Core;
using Grpc.Net.Client;
using HybridServing.Contracts.ControlPlane;
using HybridServing.Contracts.Resources;
using HybridServing.ControlPlane.Tests.Infrastructure;
using HybridServing.TestKit;

namespace HybridServing.ControlPlane.Tests.Reconciliation;

/// <summary>The control plane in its local home against in-test sidecars, over real HTTP and gRPC.</summary>
public sealed class LocalHomeEndToEndTests : IAsyncLifetime
{
    private readonly TempDirectory _dir = new("cp");
    private readonly List<FakeSidecar> _sidecars = [];
    private ControlPlaneHost? _host;

    private string Manifests => _dir.Combine("manifests");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Manifests);
        var repo = _dir.Combine("manifests", "adapters");
        TestAdapters.Write(repo, "support-en", 8);
        TestAdapters.Write(repo, "support-de", 8);
        TestAdapters.Write(repo, "sql-lora", 16);
        TestAdapters.Write(repo, "wide-lora", 64);
        for (var i = 0; i < 2; i++)
        {
            var s = new FakeSidecar($"engine-{i}", $"node-{i}");
            await s.StartAsync();
            _sidecars.Add(s);
        }
    }

    public async Task DisposeAsync()
    {
        if (_host is not null) await _host.DisposeAsync();
        foreach (var s in _sidecars) await s.DisposeAsync();
        _dir.Dispose();
    }

    private async Task<ControlPlaneHost> Start(IDictionary<string, IDictionary<string, string>>? labels = null) =>
        _host = await ControlPlaneHost.StartAsync(Manifests, _sidecars, labels);

    private static bool IsReady(LoraAdapter a) => a.Status?.Conditions?.Any(c => c.Type == "Ready" && c.Status == "True") == true;

    private static V1ConditionView Ready(LoraAdapter a) => new(a.Status!.Conditions!.Single(c => c.Type == "Ready"));

    private sealed record V1ConditionView(k8s.Models.V1Condition C)
    {
        public string Status => C.Status;
        public string Reason => C.Reason;
        public string Message => C.Message;
    }

    [Fact]
    public async Task Seed_example_reaches_Ready_is_routable_and_removing_its_file_unloads_it_everywhere()
    {
        // The production-stack proposal's example with apiVersion changed, type local, and the pattern expanded.
        Manifests_.Write(Manifests, "support.yaml", """
            apiVersion: hybridserving.io/v1alpha1
            kind: LoraAdapter
            metadata:
              name: example-adapter
            spec:
              baseModel: "test/tiny"
              adapterSource:
                type: "local"
                repository: "./adapters"
                pattern: "support-*"  # Optional: pattern matching
                prefix: "support-"
              deploymentConfig:
                loadOnStartup: true
                podSelector:
                  matchLabels:
                    pool: "default"
                replicas:
                  min: 1
                  max: 2
              schedulingConfig:
                priority: 10
                preemptionPolicy: "LowerPriority"
                resourceRequirements:
                  memory: "1Mi"
            """);
        Manifests_.Write(Manifests, "sql.yaml", Manifests_.Adapter("sql", "./adapters", adapters: ["sql-lora"]));
        // memory: 1Mi is far above what these few-KB test adapters imply for the engines (4 slots of rank 16): the
        // engines report a budget, as Sidecar:AdapterMemoryBudgetBytes does, or the declaration would fit nowhere.
        foreach (var s in _sidecars) s.Info.AdapterMemoryBudgetBytes = 16L << 20;
        var host = await Start();

        var ready = await host.WaitForAsync("example-adapter", a => IsReady(a) && a.Status!.PodAssignments!.Sum(p => p.AdapterStates.Count(x => x.State == "Loaded")) == 4);
        Assert.Equal(LoraAdapterPhases.Ready, ready.Status!.Phase);
        Assert.Equal(1, ready.Status.ObservedGeneration);
        Assert.Equal(["support-de", "support-en"], ready.Status.LoadedAdapters);
        Assert.Equal(["engine-0", "engine-1"], ready.Status.PodAssignments!.Select(p => p.Pod));
        Assert.Equal("node-1", ready.Status.PodAssignments![1].Node);
        var facts = ready.Status.Adapters!.Single(a => a.Name == "support-de");
        Assert.Equal(8, facts.Rank);
        Assert.StartsWith("sha256:", facts.Digest);
        Assert.Equal(Path.Combine(Manifests, "adapters", "support-de"), facts.Uri);
        Assert.All(ready.Status.Conditions!, c => Assert.Equal(1, c.ObservedGeneration));
        Assert.Equal("False", ready.Status.Conditions!.Single(c => c.Type == "Degraded").Status);
        await host.WaitForAsync("sql", IsReady);

        // Kubernetes shapes: a list, and a Status object for an absent name.
        using (var list = await host.GetJsonAsync("/apis/hybridserving.io/v1alpha1/namespaces/default/loraadapters"))
        {
            Assert.Equal("LoraAdapterList", list.RootElement.GetProperty("kind").GetString());
            Assert.Equal(["example-adapter", "sql"], list.RootElement.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("metadata").GetProperty("name").GetString()));
        }
        using (var other = await host.GetJsonAsync("/apis/hybridserving.io/v1alpha1/namespaces/other/loraadapters"))
            Assert.Empty(other.RootElement.GetProperty("items").EnumerateArray());
        using (var missing = await host.Http.GetAsync("/apis/hybridserving.io/v1alpha1/namespaces/default/loraadapters/nope"))
        {
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
            using var body = JsonDocument.Parse(await missing.Content.ReadAsStringAsync());
            Assert.Equal("Status", body.RootElement.GetProperty("kind").GetString());
            Assert.Equal("NotFound", body.RootElement.GetProperty("reason").GetString());
            Assert.Equal(404, body.RootElement.GetProperty("code").GetInt32());
        }

        // Router API over gRPC, and its JSON mirror.
        using var channel = GrpcChannel.ForAddress(host.GrpcUrl);
        var router = new AdapterRouter.AdapterRouterClient(channel);
        var available = await router.ListAvailableAdaptersAsync(new ListAvailableAdaptersRequest { BaseModel = TestAdapters.TinyModel });
        Assert.Equal(["sql-lora", "support-de", "support-en"], available.Adapters.Select(a => a.Name));
        Assert.Empty((await router.ListAvailableAdaptersAsync(new ListAvailableAdaptersRequest { BaseModel = "other" })).Adapters);
        var pods = await router.GetPodsForAdapterAsync(new GetPodsForAdapterRequest { Name = "support-en" });
        Assert.Equal(["engine-0", "engine-1"], pods.Endpoints.Select(e => e.Engine).Order());
        Assert.All(pods.Endpoints, e => Assert.Equal(Residency.Loaded, e.Residency));
        var notFound = await Assert.ThrowsAsync<RpcException>(async () => await router.GetPodsForAdapterAsync(new GetPodsForAdapterRequest { Name = "nope" }));
        Assert.Equal(StatusCode.NotFound, notFound.StatusCode);

        using (var routes = await host.GetJsonAsync("/v1/routes"))
        {
            var engines = routes.RootElement.GetProperty("engines").EnumerateArray().ToList();
            Assert.Equal("http://engine.engine-0.test:8000", engines[0].GetProperty("url").GetString());
            var sql = routes.RootElement.GetProperty("adapters").EnumerateArray().Single(a => a.GetProperty("name").GetString() == "sql-lora");
            Assert.Equal("sql", sql.GetProperty("resource").GetString());
            Assert.Equal("default", sql.GetProperty("namespace").GetString());
            Assert.Equal("RESIDENCY_LOADED", sql.GetProperty("endpoints")[0].GetProperty("residency").GetString());
        }
        using (var byModel = await host.GetJsonAsync("/v1/adapters?baseModel=test/tiny"))
            Assert.Equal(3, byModel.RootElement.GetProperty("adapters").GetArrayLength());

        // Actuation is batched: every call carries an engine's complete desired set.
        var last0 = _sidecars[0].EnsureCalls.Last();
        Assert.Equal(_sidecars[0].Desired, last0.Adapters.Select(a => a.Name).Order());
        Assert.All(last0.Adapters, a => Assert.Equal(TestAdapters.TinyModel, a.BaseModel));
        Assert.All(last0.Adapters, a => Assert.Equal(64, a.Sha256.Length));
        Assert.True(_sidecars[0].EnsureCalls.Count <= 3, $"expected few batched calls, got {_sidecars[0].EnsureCalls.Count}");

        // Watch, then delete a file: its adapters leave every engine and the routes.
        using var watch = router.WatchRoutes(new WatchRoutesRequest { Gateway = "test" });
        Assert.True(await watch.ResponseStream.MoveNext());
        var first = watch.ResponseStream.Current;
        Assert.Equal(3, first.Adapters.Count);
        File.Delete(Path.Combine(Manifests, "support.yaml"));
        RoutingTable? after = null;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        while (await watch.ResponseStream.MoveNext(timeout.Token))
        {
            after = watch.ResponseStream.Current;
            Assert.True(after.Version > first.Version);
            if (after.Adapters.Count == 1) break;
        }
        Assert.Equal(["sql-lora"], after!.Adapters.Select(a => a.Name));
        await ControlPlaneHost.WaitUntilAsync(() => _sidecars.All(s => !s.Desired.Any(n => n.StartsWith("support-", StringComparison.Ordinal))), "support adapters are unloaded");
        Assert.Null(await host.GetAsync("example-adapter"));
    }

    [Fact]
    public async Task Bad_input_gets_specific_reasons_and_never_holds_up_a_good_adapter()
    {
        Manifests_.Write(Manifests, "a-good.yaml", Manifests_.Adapter("good", "./adapters", adapters: ["support-en"]));
        File.SetLastWriteTimeUtc(Path.Combine(Manifests, "a-good.yaml"), DateTime.UtcNow.AddHours(-1));
        Manifests_.Write(Manifests, "conflict.yaml", Manifests_.Adapter("newer", "./adapters", pattern: "support-*"));
        Manifests_.Write(Manifests, "invalid.yaml", Manifests_.Adapter("invalid", "./adapters", extraSpec: "  deploymentConfig:\n    replicas: {min: 3, max: 2}\n"));
        Manifests_.Write(Manifests, "wrongtype.yaml", Manifests_.Adapter("wrongtype", "./adapters", extraSpec: "  schedulingConfig:\n    priority: high\n"));
        Manifests_.Write(Manifests, "nomodel.yaml", Manifests_.Adapter("nomodel", "./adapters", adapters: ["sql-lora"], baseModel: "other/model"));
        Manifests_.Write(Manifests, "wide.yaml", Manifests_.Adapter("wide", "./adapters", adapters: ["wide-lora"]));
        Manifests_.Write(Manifests, "nosource.yaml", Manifests_.Adapter("nosource", "./missing"));
        Manifests_.Write(Manifests, "broken.yaml", "apiVersion: hybridserving.io/v1alpha1\nkind: [LoraAdapter\n");
        var host = await Start();

        var good = await host.WaitForAsync("good", IsReady);
        Assert.Equal(["support-en"], good.Status!.LoadedAdapters);

        var invalid = await host.WaitForAsync("invalid", a => a.Status is not null);
        Assert.Equal(LoraAdapterPhases.Failed, invalid.Status!.Phase);
        Assert.Equal(("False", LoraAdapterReasons.InvalidSpec), (Ready(invalid).Status, Ready(invalid).Reason));
        Assert.StartsWith("spec.deploymentConfig.replicas.min", Ready(invalid).Message);

        var wrongType = await host.WaitForAsync("wrongtype", a => a.Status is not null);
        Assert.Equal(LoraAdapterReasons.InvalidSpec, Ready(wrongType).Reason);
        Assert.StartsWith("spec.schedulingConfig.priority", Ready(wrongType).Message);

        var noModel = await host.WaitForAsync("nomodel", a => a.Status is not null);
        Assert.Equal(LoraAdapterPhases.Pending, noModel.Status!.Phase);
        Assert.Equal(LoraAdapterReasons.NoCompatibleEngine, Ready(noModel).Reason);
        Assert.Equal(LoraAdapterReasons.NoCompatibleEngine, Assert.Single(noModel.Status.FailedAdapters!).Reason);

        var wide = await host.WaitForAsync("wide", a => a.Status is not null);
        Assert.Equal(LoraAdapterReasons.AdapterIncompatible, Ready(wide).Reason);
        Assert.Contains("rank 64", Ready(wide).Message);
        Assert.Equal(LoraAdapterPhases.Failed, wide.Status!.Phase);

        var noSource = await host.WaitForAsync("nosource", a => a.Status is not null);
        Assert.Equal(LoraAdapterReasons.SourceUnavailable, Ready(noSource).Reason);
        Assert.Contains("Next attempt at", Ready(noSource).Message);

        // The newer declaration loses the shared name but keeps its other adapter.
        var newer = await host.WaitForAsync("newer", a => a.Status?.LoadedAdapters?.Count == 1);
        Assert.Equal(LoraAdapterReasons.NameConflict, Ready(newer).Reason);
        Assert.Equal("False", Ready(newer).Status);
        Assert.Equal(["support-de"], newer.Status!.LoadedAdapters);
        var conflict = Assert.Single(newer.Status.FailedAdapters!);
        Assert.Equal(("support-en", LoraAdapterReasons.NameConflict), (conflict.Name, conflict.Reason));
        Assert.Contains("default/good", conflict.Message);
        Assert.Equal(LoraAdapterPhases.Partial, newer.Status.Phase);

        using var status = await host.GetJsonAsync("/v1/status");
        var problem = Assert.Single(status.RootElement.GetProperty("problems").EnumerateArray());
        Assert.Contains("broken.yaml", problem.GetProperty("message").GetString());

        using var routes = await host.GetJsonAsync("/v1/routes");
        var route = routes.RootElement.GetProperty("adapters").EnumerateArray().Single(a => a.GetProperty("name").GetString() == "support-en");
        Assert.Equal("good", route.GetProperty("resource").GetString());

        // Fixing the file is picked up: a new generation, observed.
        Manifests_.Write(Manifests, "invalid.yaml", Manifests_.Adapter("invalid", "./adapters", adapters: ["sql-lora"]));
        var fixedUp = await host.WaitForAsync("invalid", IsReady);
        Assert.Equal(2, fixedUp.Metadata.Generation);
        Assert.Equal(2, fixedUp.Status!.ObservedGeneration);
    }

    [Fact]
    public async Task Load_failures_back_off_per_engine_visibly_and_the_adapter_moves()
    {
        _sidecars[0].FailAdapters["support-en"] = "Call to add_lora method failed: boom";
        Manifests_.Write(Manifests, "one.yaml", Manifests_.Adapter("one", "./adapters", adapters: ["support-en"]));
        var host = await Start();

        var moved = await host.WaitForAsync("one", a => IsReady(a) && a.Status!.FailedAdapters is { Count: > 0 });
        Assert.Equal(["support-en"], _sidecars[1].Loaded);
        var failure = Assert.Single(moved.Status!.FailedAdapters!);
        Assert.Equal(("engine-0", LoraAdapterReasons.LoadFailed, 1), (failure.Pod, failure.Reason, failure.Attempts));
        Assert.NotNull(failure.NextRetryTime);
        Assert.Contains("EngineRejected", failure.Message);
        var onEngine0 = moved.Status.PodAssignments!.Single(p => p.Pod == "engine-0").AdapterStates.Single();
        Assert.Equal(("Failed", 1), (onEngine0.State, onEngine0.Attempts));
        Assert.Equal("True", moved.Status.Conditions!.Single(c => c.Type == "Degraded").Status);

        // Once the backoff expires the healthy placement stays (no churn) and the failure is no longer shown.
        var settled = await host.WaitForAsync("one", a => a.Status!.FailedAdapters is null);
        Assert.Equal("False", settled.Status!.Conditions!.Single(c => c.Type == "Degraded").Status);
        Assert.Equal(["support-en"], _sidecars[1].Loaded);
    }

    [Fact]
    public async Task A_refusal_retrying_cannot_fix_shows_in_status_at_once_and_is_not_Loading()
    {
        // Every sidecar refuses the load with a non-retryable reason (its local roots do not hold the path).
        foreach (var s in _sidecars) s.RefuseAdapters["support-en"] = ("PathNotAllowed", "Local adapter path '/x/support-en' is refused: adapter paths are confined to /m (Sidecar:AllowedLocalRoots).");
        Manifests_.Write(Manifests, "one.yaml", Manifests_.Adapter("one", "./adapters", adapters: ["support-en"]));
        var host = await Start();

        // At once: within the first passes after the engines connect, not after backoffs or resyncs.
        var refused = await host.WaitForAsync("one", a => a.Status?.FailedAdapters?.Any(f => f.Reason == "PathNotAllowed" && f.Pod is null) == true, timeoutSeconds: 5);
        var failure = refused.Status!.FailedAdapters!.First();
        Assert.Equal("support-en", failure.Name);
        Assert.Equal("PathNotAllowed", failure.Reason);
        Assert.Contains("Sidecar:AllowedLocalRoots", failure.Message);
        Assert.Equal(LoraAdapterPhases.Failed, refused.Status.Phase);
        var degraded = refused.Status.Conditions!.Single(c => c.Type == "Degraded");
        Assert.Equal(("True", "PathNotAllowed"), (degraded.Status, degraded.Reason));
        Assert.Equal("PathNotAllowed", Ready(refused).Reason);

        // It stays so: not retried into "Loading, no failures" when backoffs expire.
        await Task.Delay(TimeSpan.FromSeconds(3));
        var later = await host.GetAsync("one");
        Assert.Equal(LoraAdapterPhases.Failed, later!.Status!.Phase);
        Assert.Equal("True", later.Status.Conditions!.Single(c => c.Type == "Degraded").Status);
    }

    [Fact]
    public async Task A_local_repository_outside_the_allowed_roots_is_refused_by_the_control_plane_naming_the_option()
    {
        // The production-stack proposal's example with type local and a repository outside the manifests folder.
        var outside = _dir.Combine("elsewhere");
        TestAdapters.Write(outside, "support-en", 8);
        Manifests_.Write(Manifests, "far.yaml", Manifests_.Adapter("far", outside, pattern: "support-*"));
        var host = await Start();

        var refused = await host.WaitForAsync("far", a => a.Status?.Phase == LoraAdapterPhases.Failed, timeoutSeconds: 5);
        Assert.Equal(("PathNotAllowed", "False"), (Ready(refused).Reason, Ready(refused).Status));
        Assert.Contains($"confined to {Manifests} (ControlPlane:AllowedLocalRoots)", Ready(refused).Message);
        Assert.Contains($"Allow it with ControlPlane:AllowedLocalRoots:N={_dir.Path}", Ready(refused).Message);
        Assert.Contains("Sidecar:AllowedLocalRoots", Ready(refused).Message);
        Assert.Equal("True", refused.Status!.Conditions!.Single(c => c.Type == "Degraded").Status);
        Assert.All(_sidecars, s => Assert.DoesNotContain("support-en", s.Desired)); // never placed

        // The option the message names allows it.
        await host.DisposeAsync();
        _host = await ControlPlaneHost.StartAsync(Manifests, _sidecars, extra: new Dictionary<string, string?>
        {
            ["ControlPlane:AllowedLocalRoots:0"] = Manifests, ["ControlPlane:AllowedLocalRoots:1"] = outside,
        });
        await _host.WaitForAsync("far", IsReady);
    }

    [Fact]
    public async Task An_adapter_failing_everywhere_backs_off_exponentially()
    {
        _sidecars[0].FailAdapters["support-en"] = "nope";
        _sidecars[1].FailAdapters["support-en"] = "nope";
        Manifests_.Write(Manifests, "one.yaml", Manifests_.Adapter("one", "./adapters", adapters: ["support-en"]));
        var host = await Start();
        var failing = await host.WaitForAsync("one", a => a.Status?.FailedAdapters?.Any(f => f.Attempts >= 2) == true, timeoutSeconds: 20);
        Assert.NotEqual(LoraAdapterPhases.Ready, failing.Status!.Phase);
        var twice = failing.Status.FailedAdapters!.First(f => f.Attempts >= 2);
        // The delays themselves (1 s, 2 s, ... bounded) are checked on a fake clock in BackoffTests.
        Assert.NotNull(twice.NextRetryTime);
        Assert.Equal(LoraAdapterReasons.LoadFailed, twice.Reason);
        Assert.Contains("EngineRejected", twice.Message);
    }

    [Fact]
    public async Task RequestLoad_places_an_on_demand_adapter()
    {
        Manifests_.Write(Manifests, "lazy.yaml", Manifests_.Adapter("lazy", "./adapters", adapters: ["sql-lora"], extraSpec: "  deploymentConfig:\n    loadOnStartup: false\n"));
        var host = await Start();
        var idle = await host.WaitForAsync("lazy", IsReady);
        Assert.Equal(LoraAdapterReasons.OnDemand, Ready(idle).Reason);
        Assert.All(_sidecars, s => Assert.Empty(s.Desired));

        using var channel = GrpcChannel.ForAddress(host.GrpcUrl);
        var router = new AdapterRouter.AdapterRouterClient(channel);
        var route = Assert.Single((await router.ListAvailableAdaptersAsync(new())).Adapters);
        Assert.Empty(route.Endpoints);

        var unknown = await router.RequestLoadAsync(new RequestLoadRequest { Name = "nope" });
        Assert.False(unknown.Accepted);
        Assert.Equal("NotFound", unknown.Reason);
        using (var http404 = await host.Http.PostAsync("/v1/adapters/nope/load", null))
            Assert.Equal(HttpStatusCode.NotFound, http404.StatusCode);

        using var accepted = await host.Http.PostAsync("/v1/adapters/sql-lora/load", null);
        Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
        using (var body = JsonDocument.Parse(await accepted.Content.ReadAsStringAsync()))
        {
            Assert.True(body.RootElement.GetProperty("accepted").GetBoolean());
            Assert.Equal("Placed", body.RootElement.GetProperty("reason").GetString());
        }
        await ControlPlaneHost.WaitUntilAsync(() => _sidecars.Any(s => s.Loaded.Contains("sql-lora")), "sql-lora is loaded");
        var again = await router.RequestLoadAsync(new RequestLoadRequest { Name = "sql-lora" });
        Assert.Equal(("AlreadyPlaced", true), (again.Reason, again.Accepted));
    }

    [Fact]
    public async Task A_restarted_sidecar_gets_its_desired_set_again()
    {
        Manifests_.Write(Manifests, "all.yaml", Manifests_.Adapter("all", "./adapters", pattern: "support-*", extraSpec: "  deploymentConfig:\n    replicas: {all: true}\n"));
        var host = await Start();
        await host.WaitForAsync("all", a => IsReady(a) && a.Status!.PodAssignments!.Count == 2);
        Assert.Equal(["support-de", "support-en"], _sidecars[0].Loaded);

        await _sidecars[0].StopAsync();
        await _sidecars[0].StartAsync(); // same port, adapters forgotten
        await ControlPlaneHost.WaitUntilAsync(() => _sidecars[0].Loaded.Count == 2, "the restarted sidecar holds its adapters again");
    }

    [Fact]
    public async Task Pod_selector_limits_placement_to_labelled_engines()
    {
        Manifests_.Write(Manifests, "gpu.yaml", Manifests_.Adapter("gpu", "./adapters", pattern: "support-*",
            extraSpec: "  deploymentConfig:\n    podSelector:\n      matchLabels: {gpu: h100}\n    replicas: {all: true}\n"));
        var host = await Start(new Dictionary<string, IDictionary<string, string>> { ["engine-1"] = new Dictionary<string, string> { ["gpu"] = "h100" } });
        var ready = await host.WaitForAsync("gpu", IsReady);
        Assert.Equal(["engine-1"], ready.Status!.PodAssignments!.Select(p => p.Pod));
        Assert.Empty(_sidecars[0].Desired);
    }
}

/// <summary>Alias so tests read as "Manifests_.Write" next to the Manifests folder property.</summary>
internal static class Manifests_
{
    public static string Write(string folder, string fileName, string yaml) => Infrastructure.Manifests.Write(folder, fileName, yaml);

    public static string Adapter(string name, string repository, string? pattern = null, IEnumerable<string>? adapters = null,
        string baseModel = TestAdapters.TinyModel, string extraSpec = "") =>
        Infrastructure.Manifests.Adapter(name, repository, pattern, adapters, baseModel, extraSpec);
}

public sealed class EngineLossTests : IAsyncLifetime
{
    private readonly TempDirectory _dir = new("loss");
    private readonly List<FakeSidecar> _sidecars = [];
    private ControlPlaneHost? _host;

    public async Task InitializeAsync()
    {
        TestAdapters.Write(_dir.Combine("adapters"), "support-en", 8);
        for (var i = 0; i < 2; i++)
        {
            var s = new FakeSidecar($"engine-{i}", $"node-{i}");
            await s.StartAsync();
            _sidecars.Add(s);
        }
    }

    public async Task DisposeAsync()
    {
        if (_host is not null) await _host.DisposeAsync();
        foreach (var s in _sidecars) await s.DisposeAsync();
        _dir.Dispose();
    }

    [Fact]
    public async Task Adapters_move_off_an_engine_whose_sidecar_stays_unreachable()
    {
        Manifests.Write(_dir.Path, "one.yaml", Manifests.Adapter("one", "./adapters", adapters: ["support-en"]));
        _host = await ControlPlaneHost.StartAsync(_dir.Path, _sidecars);
        var ready = await _host.WaitForAsync("one", a => a.Status?.LoadedAdapters?.Count == 1);
        var first = Assert.Single(ready.Status!.PodAssignments!).Pod;
        var survivor = _sidecars.Single(s => s.Name != first);

        await _sidecars.Single(s => s.Name == first).StopAsync();
        // Within the grace period the placement is kept (a sidecar restart must not cause churn); after it, the adapter moves.
        await ControlPlaneHost.WaitUntilAsync(() => survivor.Loaded.Contains("support-en"), "the adapter moved to the surviving engine", timeoutSeconds: 20);
        var moved = await _host.WaitForAsync("one", a => a.Status?.PodAssignments?.SingleOrDefault()?.Pod == survivor.Name);
        Assert.Equal(["support-en"], moved.Status!.LoadedAdapters);
        using var routes = await _host.GetJsonAsync("/v1/routes");
        var engine = routes.RootElement.GetProperty("engines").EnumerateArray().Single(e => e.GetProperty("name").GetString() == first);
        Assert.False(engine.GetProperty("healthy").GetBoolean());
    }
}

public sealed class RestartTests : IAsyncLifetime
{
    private readonly TempDirectory _dir = new("restart");
    private readonly List<FakeSidecar> _sidecars = [];

    public async Task InitializeAsync()
    {
        foreach (var name in new[] { "a1", "a2", "a3", "a4" }) TestAdapters.Write(_dir.Combine("adapters"), name, 8);
        for (var i = 0; i < 3; i++)
        {
            var s = new FakeSidecar($"engine-{i}", $"node-{i}");
            await s.StartAsync();
            _sidecars.Add(s);
        }
    }

    public async Task DisposeAsync()
    {
        foreach (var s in _sidecars) await s.DisposeAsync();
        _dir.Dispose();
    }

    [Fact]
    public async Task A_restarted_control_plane_rebuilds_its_picture_from_the_sidecars_and_moves_nothing()
    {
        Manifests.Write(_dir.Path, "set.yaml", Manifests.Adapter("set", "./adapters", pattern: "a*"));
        Dictionary<string, IReadOnlyList<string>> before;
        await using (var first = await ControlPlaneHost.StartAsync(_dir.Path, _sidecars))
        {
            await first.WaitForAsync("set", a => a.Status?.LoadedAdapters?.Count == 4);
            before = _sidecars.ToDictionary(s => s.Name, s => s.Desired);
        }
        var callsBefore = _sidecars.ToDictionary(s => s.Name, s => s.EnsureCalls.Count);

        // One sidecar answers late: the new control plane must not re-place its adapters on the others meanwhile.
        var late = _sidecars.Last(s => s.Desired.Count > 0);
        await late.StopAsync();
        // A grace period well beyond the late sidecar's delay, so that a loaded test machine cannot outlast it.
        await using var second = await ControlPlaneHost.StartAsync(_dir.Path, _sidecars,
            extra: new Dictionary<string, string?> { ["ControlPlane:EngineGracePeriod"] = "00:00:15" });
        await Task.Delay(700);
        await late.StartAsync(keepAdapters: true);
        await second.WaitForAsync("set", a => a.Status?.LoadedAdapters?.Count == 4 && a.Status.PodAssignments!.Sum(p => p.Adapters.Count) == 4);
        foreach (var s in _sidecars)
        {
            Assert.Equal(before[s.Name], s.Desired);
            // Every desired set sent after the restart is the one the engine already held: no unload, no duplicate load.
            foreach (var call in s.EnsureCalls.Skip(callsBefore[s.Name]))
                Assert.Equal(before[s.Name], call.Adapters.Select(a => a.Name).Order(StringComparer.Ordinal).ToList());
        }
    }
}

public sealed class PriorityTests : IAsyncLifetime
{
    private readonly TempDirectory _dir = new("prio");
    private readonly FakeSidecar _sidecar = new("engine-0", "node-0", maxLoras: 1, maxCpuLoras: 1);

    public async Task InitializeAsync()
    {
        TestAdapters.Write(_dir.Combine("adapters"), "low-lora", 8);
        TestAdapters.Write(_dir.Combine("adapters"), "high-lora", 8);
        await _sidecar.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _sidecar.DisposeAsync();
        _dir.Dispose();
    }

    [Fact]
    public async Task A_higher_priority_adapter_preempts_a_lower_one_and_the_victim_says_so()
    {
        Manifests.Write(_dir.Path, "low.yaml", Manifests.Adapter("low", "./adapters", adapters: ["low-lora"], extraSpec: "  schedulingConfig: {priority: 1}\n"));
        await using var host = await ControlPlaneHost.StartAsync(_dir.Path, [_sidecar]);
        await host.WaitForAsync("low", a => a.Status?.LoadedAdapters?.Count == 1);

        Manifests.Write(_dir.Path, "high.yaml", Manifests.Adapter("high", "./adapters", adapters: ["high-lora"], extraSpec: "  schedulingConfig: {priority: 10, preemptionPolicy: LowerPriority}\n"));
        await host.WaitForAsync("high", a => a.Status?.LoadedAdapters?.Count == 1);
        Assert.Equal(["high-lora"], _sidecar.Desired);
        var low = await host.WaitForAsync("low", a => a.Status?.Phase == LoraAdapterPhases.Pending);
        var failed = Assert.Single(low.Status!.FailedAdapters!);
        Assert.Equal(LoraAdapterReasons.Preempted, failed.Reason);
        Assert.Contains("'high-lora'", failed.Message);
        Assert.Equal(LoraAdapterReasons.Preempted, low.Status.Conditions!.Single(c => c.Type == "Scheduled").Reason);

        // Removing the high-priority one gives the slot back.
        File.Delete(Path.Combine(_dir.Path, "high.yaml"));
        await host.WaitForAsync("low", a => a.Status?.LoadedAdapters?.Count == 1);
        Assert.Equal(["low-lora"], _sidecar.Desired);
    }
}

public sealed class OnDemandEvictionTests : IAsyncLifetime
{
    private readonly TempDirectory _dir = new("lru");
    private readonly FakeSidecar _sidecar = new("engine-0", "node-0", maxLoras: 1, maxCpuLoras: 2);

    public async Task InitializeAsync()
    {
        foreach (var n in new[] { "od-a", "od-b", "od-c" }) TestAdapters.Write(_dir.Combine("adapters"), n, 8);
        await _sidecar.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _sidecar.DisposeAsync();
        _dir.Dispose();
    }

    [Fact]
    public async Task A_cold_start_on_a_full_engine_evicts_the_least_recently_requested_on_demand_adapter()
    {
        Manifests.Write(_dir.Path, "od.yaml", Manifests.Adapter("od", "./adapters", pattern: "od-*", extraSpec: "  deploymentConfig:\n    loadOnStartup: false\n"));
        await using var host = await ControlPlaneHost.StartAsync(_dir.Path, [_sidecar]);
        await host.WaitForAsync("od", a => a.Status?.Adapters?.Count == 3);
        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress(host.GrpcUrl);
        var router = new HybridServing.Contracts.ControlPlane.AdapterRouter.AdapterRouterClient(channel);

        Assert.True((await router.RequestLoadAsync(new() { Name = "od-a" })).Accepted);
        Assert.True((await router.RequestLoadAsync(new() { Name = "od-b" })).Accepted);
        await ControlPlaneHost.WaitUntilAsync(() => _sidecar.Loaded.Count == 2, "two on-demand adapters are loaded");

        var third = await router.RequestLoadAsync(new() { Name = "od-c" });
        Assert.True(third.Accepted, third.Message);
        await ControlPlaneHost.WaitUntilAsync(() => _sidecar.Desired.SequenceEqual(["od-b", "od-c"]), "od-a (least recently requested) made room for od-c");
    }
}
