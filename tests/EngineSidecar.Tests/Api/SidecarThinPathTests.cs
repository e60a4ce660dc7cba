using Grpc.Core;
using Grpc.Health.V1;
using HybridServing.Contracts.Sidecar;
using HybridServing.EngineSidecar.Tests.Infrastructure;
using HybridServing.TestKit;
using static HybridServing.EngineSidecar.Tests.Infrastructure.StateWaits;

namespace HybridServing.EngineSidecar.Tests.Api;

/// <summary>The gRPC surface end to end against an engine over real HTTP.</summary>
public sealed class SidecarThinPathTests
{
    [Fact]
    public async Task EnsureAdapters_loads_then_unloads_through_the_engine_and_streams_progress()
    {
        using var dir = new TempDirectory("sc-thin");
        var adapters = dir.Combine("adapters");
        var a1 = TestAdapters.Write(adapters, "a1", rank: 8);
        var a2 = TestAdapters.Write(adapters, "a2", rank: 16);
        await using var engine = await FakeEngine.StartAsync();
        await using var host = await SidecarHost.StartAsync(SidecarHost.FastSettings(engine.BaseUrl, dir.Combine("cache"), adapters));

        var response = await host.Client.EnsureAdaptersAsync(new EnsureAdaptersRequest { Generation = 7, Adapters = { Spec("a1", a1), Spec("a2", "file://" + a2) } });
        Assert.Equal(7, response.Generation);
        Assert.All(response.Adapters, a => Assert.Equal(AdapterPhase.Pending, a.Phase));

        var state = await host.WaitForStateAsync(s => s.Adapters.Count == 2 && s.Adapters.All(a => a.Phase == AdapterPhase.Loaded), what: "both loaded");
        Assert.Equal(7, state.DesiredGeneration);
        Assert.Equal(16, state.Adapter("a2")!.Rank);
        Assert.Equal(64, state.Adapter("a1")!.Digest.Length);
        Assert.True(state.Load.Healthy);
        Assert.Equal("", state.Adapter("a1")!.Residency); // this engine has no vllm:lora_adapter_loaded: unknown
        Assert.Equal(["a1", "a2"], engine.Adapters.Keys.Order());
        Assert.Equal(a2, engine.Adapters["a2"]);

        // a1 leaves the set; a2's source changes spelling (file:// to a plain path), which counts as a new source.
        await host.Client.EnsureAdaptersAsync(new EnsureAdaptersRequest { Generation = 8, Adapters = { Spec("a2", a2) } });
        await host.WaitForStateAsync(s => s.Adapters.Count == 1 && s.Adapter("a2")?.Phase == AdapterPhase.Loaded && engine.LoadCalls("a2") == 2, what: "a1 unloaded");
        Assert.Equal(["a2"], engine.Adapters.Keys);
        Assert.Contains("unload a1", engine.Calls);
        Assert.EndsWith("inplace=True", engine.Calls.Last(c => c.StartsWith("load a2", StringComparison.Ordinal)));

        // The same set again changes nothing on the engine.
        var calls = engine.Calls.Count;
        await host.Client.EnsureAdaptersAsync(new EnsureAdaptersRequest { Generation = 9, Adapters = { Spec("a2", a2) } });
        await host.WaitForStateAsync(s => s.DesiredGeneration == 9, what: "generation 9");
        Assert.Equal(calls, engine.Calls.Count);
    }

    [Fact]
    public async Task GetInfo_reports_base_models_and_capacity_from_the_engine()
    {
        using var dir = new TempDirectory("sc-info");
        await using var engine = await FakeEngine.StartAsync();
        await using var host = await SidecarHost.StartAsync(SidecarHost.FastSettings(engine.BaseUrl, dir.Combine("cache")));
        await host.WaitForStateAsync(s => s.Info.BaseModels.Count > 0 && s.Info.MaxLoras == 2, what: "info from the engine");
        var info = await host.Client.GetInfoAsync(new GetInfoRequest());
        Assert.Equal("vllm", info.EngineKind);
        Assert.Equal(["test/tiny"], info.BaseModels);
        Assert.Equal(2, info.MaxLoras);
        Assert.Equal(2, info.MaxCpuLoras);
        Assert.Equal(16, info.MaxLoraRank);
        Assert.Equal("pod-a", info.PodName);
        Assert.Equal("node-1", info.NodeName);
        Assert.Equal(engine.BaseUrl.ToString(), info.EngineUrl);

        var health = new Health.HealthClient(host.Channel);
        var deadline = DateTime.UtcNow.AddSeconds(5);
        HealthCheckResponse.Types.ServingStatus status;
        do
        {
            status = (await health.CheckAsync(new HealthCheckRequest())).Status;
            if (status == HealthCheckResponse.Types.ServingStatus.Serving) break;
            await Task.Delay(100);
        } while (DateTime.UtcNow < deadline);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, status);
    }

    [Fact]
    public async Task Load_and_Unload_change_one_adapter_and_WatchState_reports_engine_load()
    {
        using var dir = new TempDirectory("sc-one");
        var a1 = TestAdapters.Write(dir.Path, "one");
        await using var engine = await FakeEngine.StartAsync();
        await using var host = await SidecarHost.StartAsync(SidecarHost.FastSettings(engine.BaseUrl, dir.Combine("cache"), dir.Path));

        var status = await host.Client.LoadAsync(new LoadRequest { Adapter = Spec("one", a1) });
        Assert.Equal(AdapterPhase.Pending, status.Phase);
        await host.WaitForPhaseAsync("one", AdapterPhase.Loaded);

        engine.Running = 3;
        var busy = await host.WaitForStateAsync(s => s.Load.Running == 3, what: "running=3");
        Assert.Equal(0.25, busy.Load.KvCacheUsage, 3);

        Assert.False(busy.Load.Sleeping);

        // vLLM's sleep mode reaches the ControlPlane through the load report (placement leaves a sleeping engine out).
        engine.SleepState = "weights_offloaded";
        await host.WaitForStateAsync(s => s.Load.Sleeping, what: "sleeping");
        engine.SleepState = "awake";
        await host.WaitForStateAsync(s => !s.Load.Sleeping, what: "awake again");

        var removed = await host.Client.UnloadAsync(new UnloadRequest { Name = "one" });
        Assert.True(removed.Removed);
        await host.WaitForStateAsync(s => s.Adapter("one") is null, what: "one unloaded");
        Assert.Empty(engine.Adapters);
        Assert.False((await host.Client.UnloadAsync(new UnloadRequest { Name = "never-there" })).Removed);
    }

    [Fact]
    public async Task Hostile_specs_fail_with_specific_reasons_and_never_reach_the_engine()
    {
        using var dir = new TempDirectory("sc-hostile");
        var root = dir.Combine("root");
        Directory.CreateDirectory(root);
        var outside = TestAdapters.Write(dir.Combine("outside"), "x");
        var fine = TestAdapters.Write(root, "fine");
        var big = TestAdapters.Write(root, "big", rank: 64);
        Directory.CreateSymbolicLink(Path.Combine(root, "escape"), outside);
        await using var engine = await FakeEngine.StartAsync();
        await using var host = await SidecarHost.StartAsync(SidecarHost.FastSettings(engine.BaseUrl, dir.Combine("cache"), root));

        await host.Client.EnsureAdaptersAsync(new EnsureAdaptersRequest
        {
            Adapters =
            {
                Spec("../etc", fine),
                Spec("traversal", root + "/../outside/x"),
                Spec("outside", outside),
                Spec("symlink", Path.Combine(root, "escape")),
                Spec("relative", "adapters/x/y/z"),
                Spec("scheme", "ftp://host/x"),
                Spec("digest", fine, sha256: "abc"),
                Spec("wrongdigest", fine, sha256: new string('0', 64)),
                Spec("rank", big),
                Spec("base", fine, baseModel: "other/model"),
                Spec("missing", Path.Combine(root, "nope")),
                Spec("fine", fine),
            },
        });
        var state = await host.WaitForStateAsync(s => s.Adapters.Count == 12 && s.Adapters.All(a => a.Phase is AdapterPhase.Loaded or AdapterPhase.Failed),
            what: "every adapter settled");
        var reasons = state.Adapters.ToDictionary(a => a.Name, a => a.Reason);
        Assert.Equal("InvalidName", reasons["../etc"]);
        Assert.Equal("PathNotAllowed", reasons["traversal"]);
        Assert.Equal("PathNotAllowed", reasons["outside"]);
        Assert.Equal("PathNotAllowed", reasons["symlink"]);
        Assert.Contains("symlink", state.Adapter("symlink")!.Message);
        Assert.Equal("InvalidSource", reasons["relative"]);
        Assert.Equal("InvalidSource", reasons["scheme"]);
        Assert.Equal("InvalidSource", reasons["digest"]);
        Assert.Equal("DigestMismatch", reasons["wrongdigest"]);
        Assert.Equal("RankTooLarge", reasons["rank"]);
        Assert.Contains("greater than max_lora_rank 16", state.Adapter("rank")!.Message);
        Assert.Equal("BaseModelMismatch", reasons["base"]);
        Assert.Equal("NotFound", reasons["missing"]);
        Assert.Equal(AdapterPhase.Loaded, state.Adapter("fine")!.Phase);
        Assert.Equal(["fine"], engine.Adapters.Keys);
        Assert.Equal(1, engine.Calls.Count(c => c.StartsWith("load", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Duplicate_names_and_missing_fields_are_invalid_arguments()
    {
        using var dir = new TempDirectory("sc-args");
        await using var engine = await FakeEngine.StartAsync();
        await using var host = await SidecarHost.StartAsync(SidecarHost.FastSettings(engine.BaseUrl, dir.Combine("cache"), dir.Path));
        var dup = await Assert.ThrowsAsync<RpcException>(() => host.Client.EnsureAdaptersAsync(new EnsureAdaptersRequest
        {
            Adapters = { Spec("a", "/x"), Spec("a", "/y") },
        }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, dup.StatusCode);
        Assert.Contains("'a'", dup.Status.Detail);
        var load = await Assert.ThrowsAsync<RpcException>(() => host.Client.LoadAsync(new LoadRequest()).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, load.StatusCode);
        var unload = await Assert.ThrowsAsync<RpcException>(() => host.Client.UnloadAsync(new UnloadRequest { Name = "../x" }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, unload.StatusCode);
    }

    [Fact]
    public async Task A_restarted_sidecar_adopts_what_the_engine_already_holds_without_reloading()
    {
        using var dir = new TempDirectory("sc-adopt");
        var a = TestAdapters.Write(dir.Path, "keep");
        await using var engine = await FakeEngine.StartAsync();
        var settings = SidecarHost.FastSettings(engine.BaseUrl, dir.Combine("cache"), dir.Path);
        await using (var first = await SidecarHost.StartAsync(settings))
        {
            await first.Client.EnsureAdaptersAsync(new EnsureAdaptersRequest { Adapters = { Spec("keep", a) } });
            await first.WaitForPhaseAsync("keep", AdapterPhase.Loaded);
        }
        await using var second = await SidecarHost.StartAsync(settings);
        // Until the control plane sends the set again, nothing is unloaded.
        await second.WaitForStateAsync(s => s.Info.BaseModels.Count == 1, what: "info");
        Assert.Equal(["keep"], engine.Adapters.Keys);
        await second.Client.EnsureAdaptersAsync(new EnsureAdaptersRequest { Adapters = { Spec("keep", a) } });
        await second.WaitForPhaseAsync("keep", AdapterPhase.Loaded);
        Assert.Equal(1, engine.LoadCalls("keep"));
        Assert.DoesNotContain("unload keep", engine.Calls);
    }

    [Fact]
    public async Task Health_is_not_serving_while_the_engine_is_down_and_adapters_wait_as_pending()
    {
        using var dir = new TempDirectory("sc-down");
        var a = TestAdapters.Write(dir.Path, "later");
        var port = Ports.GetFree();
        var settings = SidecarHost.FastSettings(new Uri($"http://127.0.0.1:{port}/"), dir.Combine("cache"), dir.Path);
        await using var host = await SidecarHost.StartAsync(settings);
        var health = new Health.HealthClient(host.Channel);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, (await health.CheckAsync(new HealthCheckRequest())).Status);
        Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, (await new HttpClient().GetAsync(new Uri(host.HttpUrl, "health"))).StatusCode);
        await host.Client.LoadAsync(new LoadRequest { Adapter = Spec("later", a) });
        Assert.Equal(AdapterPhase.Pending, (await host.Client.ListAdaptersAsync(new ListAdaptersRequest())).Adapters.Single().Phase);

        // The engine comes up late (within the start-up health timeout): the adapter follows.
        await using var engine = await MockEngineHost.StartAsync(new MockEngineHostOptions { Port = port }, "--model", "test/tiny", "--enable-lora");
        await host.WaitForPhaseAsync("later", AdapterPhase.Loaded);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, (await health.CheckAsync(new HealthCheckRequest())).Status);
    }

    [Fact]
    public async Task A_refused_unload_is_reported_and_retried_with_backoff_until_it_succeeds()
    {
        using var dir = new TempDirectory("sc-unload");
        var a = TestAdapters.Write(dir.Path, "sticky");
        await using var engine = await FakeEngine.StartAsync();
        await using var host = await SidecarHost.StartAsync(SidecarHost.FastSettings(engine.BaseUrl, dir.Combine("cache"), dir.Path));
        await host.Client.LoadAsync(new LoadRequest { Adapter = Spec("sticky", a) });
        await host.WaitForPhaseAsync("sticky", AdapterPhase.Loaded);
        engine.FailUnloads = true;
        await host.Client.UnloadAsync(new UnloadRequest { Name = "sticky" });
        var failed = await host.WaitForStateAsync(s => s.Adapter("sticky")?.Reason == "UnloadFailed", what: "unload refused");
        Assert.Contains("unload exploded", failed.Adapter("sticky")!.Message);
        var attempts = engine.Calls.Count(c => c == "unload sticky");
        engine.FailUnloads = false;
        await host.WaitForStateAsync(s => s.Adapter("sticky") is null, what: "finally unloaded");
        Assert.Empty(engine.Adapters);
        // Backoff: with a 0.2 s poll, the engine was not asked on every poll while it refused.
        Assert.InRange(attempts, 1, 3);
    }

    [Fact]
    public async Task Open_watch_streams_end_when_the_sidecar_stops()
    {
        using var dir = new TempDirectory("sc-stop");
        await using var engine = await FakeEngine.StartAsync();
        var host = await SidecarHost.StartAsync(SidecarHost.FastSettings(engine.BaseUrl, dir.Combine("cache")));
        // A channel of our own: the host disposes its channel on stop, which would end the stream from this side.
        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress(host.GrpcUrl);
        var call = new Contracts.Sidecar.EngineSidecar.EngineSidecarClient(channel).WatchState(new WatchStateRequest());
        Assert.True(await call.ResponseStream.MoveNext(CancellationToken.None));
        var drain = Task.Run(async () =>
        {
            try { while (await call.ResponseStream.MoveNext(CancellationToken.None)) { } }
            catch (RpcException) { }
        });
        var stopwatch = System.Diagnostics.Stopwatch.StartNew();
        await host.DisposeAsync();
        await drain.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(2.5), $"shutdown took {stopwatch.Elapsed}");
        call.Dispose();
    }
}
