using HybridServing.Contracts.Resources;
using HybridServing.ControlPlane.Kubernetes;
using HybridServing.KubeApiTestServer;
using k8s;
using static HybridServing.ControlPlane.Tests.Kubernetes.KubeHarness;

namespace HybridServing.ControlPlane.Tests.Kubernetes;

public sealed class StatusWriteTests
{
    private static int StatusWrites(KubeApiServer server, string? name = null) =>
        server.Requests.Count(r => r.Resource == "loraadapters" && r.Subresource == "status" && r.IsMutating && (name is null || r.Name == name));

    private static async Task<KubernetesHome> StartedHome(KubeApiServer server, KubernetesHomeOptions? options = null, int adapters = 1)
    {
        var home = Home(server, options);
        await home.StartAsync(CancellationToken.None);
        await WaitUntilAsync(() => home.Synced && home.Current.Adapters.Count == adapters, "the first picture");
        // Finalizers first (they are patches of the main resource, not status writes).
        await WaitUntilAsync(() => server.List<LoraAdapter>(Ns).All(a => a.Metadata.Finalizers?.Contains(KubernetesHomeOptions.Finalizer) == true), "finalizers added");
        return home;
    }

    [Fact]
    public async Task Status_goes_through_the_status_subresource_and_leaves_the_spec_alone()
    {
        await using var server = await KubeApiServer.StartAsync();
        server.Seed(Adapter("sql"));
        await using var home = await StartedHome(server);
        var declared = home.Current.Adapters.Single().Resource;
        // The reconciler's object may be older than the cluster's: only its status is taken.
        declared.Spec.BaseModel = "must/not-be-written";

        await home.WriteStatusAsync([WithStatus(declared, Status(LoraAdapterPhases.Ready, "sql-v1"))], CancellationToken.None);
        await WaitUntilAsync(() => server.Get<LoraAdapter>(Ns, "sql")!.Status?.Phase == LoraAdapterPhases.Ready, "the status is stored");

        var stored = server.Get<LoraAdapter>(Ns, "sql")!;
        Assert.Equal("test/tiny", stored.Spec.BaseModel);
        Assert.Equal(1, stored.Status!.ObservedGeneration);
        Assert.Equal(["sql-v1"], stored.Status.LoadedAdapters!);
        var write = Assert.Single(server.Requests, r => r.Resource == "loraadapters" && r.Subresource == "status" && r.IsMutating);
        Assert.Equal("PUT", write.Method);
        await WaitUntilAsync(() => home.StatusWrites == 1, "counted");
    }

    [Fact]
    public async Task The_same_status_is_not_written_again_even_with_new_transition_times_or_after_a_restart()
    {
        await using var server = await KubeApiServer.StartAsync();
        server.Seed(Adapter("sql"));
        await using (var home = await StartedHome(server))
        {
            var declared = home.Current.Adapters.Single().Resource;
            await home.WriteStatusAsync([WithStatus(declared, Status(LoraAdapterPhases.Ready, "sql-v1"))], CancellationToken.None);
            await WaitUntilAsync(() => home.StatusWrites == 1, "the first write");
            for (var i = 0; i < 5; i++)
            {
                await Task.Delay(5); // the reconciler's copy gets a new lastTransitionTime each pass
                await home.WriteStatusAsync([WithStatus(declared, Status(LoraAdapterPhases.Ready, "sql-v1"))], CancellationToken.None);
            }
            await WaitUntilAsync(() => home.StatusSkips >= 1, "the repeated status was compared");
            Assert.Equal(1, StatusWrites(server));
        }

        // A restarted control plane rebuilds the same status with fresh in-memory times: nothing to write.
        await using var restarted = await StartedHome(server);
        var again = restarted.Current.Adapters.Single().Resource;
        await restarted.WriteStatusAsync([WithStatus(again, Status(LoraAdapterPhases.Ready, "sql-v1"))], CancellationToken.None);
        await WaitUntilAsync(() => restarted.StatusSkips >= 1, "the status was compared");
        Assert.Equal(1, StatusWrites(server));
        Assert.Equal(0, server.Requests.Count(r => r.IsMutating && r.Resource == "loraadapters" && r.Subresource is null && r.Time > server.Requests.Last(x => x.Subresource == "status").Time));

        // A real change is written.
        await restarted.WriteStatusAsync([WithStatus(again, Status(LoraAdapterPhases.Loading))], CancellationToken.None);
        await WaitUntilAsync(() => StatusWrites(server) == 2, "the changed status is written");
    }

    [Fact]
    public async Task A_conflict_is_reread_and_retried_not_an_error()
    {
        await using var server = await KubeApiServer.StartAsync();
        server.Seed(Adapter("sql"));
        await using var home = await StartedHome(server);
        var declared = home.Current.Adapters.Single().Resource;
        var conflict = server.FailNext("update", "loraadapters/status", 409, count: 2);

        await home.WriteStatusAsync([WithStatus(declared, Status(LoraAdapterPhases.Ready, "sql-v1"))], CancellationToken.None);
        await WaitUntilAsync(() => server.Get<LoraAdapter>(Ns, "sql")!.Status?.Phase == LoraAdapterPhases.Ready, "the status is stored despite two conflicts");
        Assert.Equal(2, conflict.Hits);
        Assert.Equal(2, home.Conflicts);
        // Each conflict re-read the object before trying again.
        Assert.True(server.Requests.Count(r => r.Verb == "get" && r.Resource == "loraadapters" && r.Name == "sql") >= 2);
    }

    [Fact]
    public async Task A_write_racing_another_writer_gets_a_real_409_then_lands_on_the_new_version()
    {
        await using var server = await KubeApiServer.StartAsync();
        server.Seed(Adapter("sql"));
        await using var home = await StartedHome(server);
        var declared = home.Current.Adapters.Single().Resource;
        using var client = server.CreateClient();
        // The status write is held up; meanwhile someone else changes the object, so the write's resourceVersion is stale.
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var held = server.InjectFault(new HybridServing.KubeApiTestServer.Faults.FaultRule("update", "loraadapters/status", 1) { Hold = release.Task });
        await home.WriteStatusAsync([WithStatus(declared, Status(LoraAdapterPhases.Ready, "sql-v1"))], CancellationToken.None);
        await WaitUntilAsync(() => held.Hits == 1, "the status write is in flight");
        // The other writer patches without a precondition (it cannot conflict itself).
        await client.CustomObjects.PatchNamespacedCustomObjectAsync(new k8s.Models.V1Patch("{\"metadata\":{\"labels\":{\"touched\":\"yes\"}}}", k8s.Models.V1Patch.PatchType.MergePatch),
            LoraAdapter.Group, LoraAdapter.Version, Ns, LoraAdapter.Plural, "sql");
        release.SetResult();

        await WaitUntilAsync(() => server.Get<LoraAdapter>(Ns, "sql")!.Status?.Phase == LoraAdapterPhases.Ready, "the status is stored");
        Assert.Equal(1, home.Conflicts);
        Assert.Contains(server.Requests, r => r.Subresource == "status" && r.StatusCode == 409 && !r.Injected);
        Assert.Equal("yes", server.Get<LoraAdapter>(Ns, "sql")!.Metadata.Labels["touched"]);
    }

    [Fact]
    public async Task Writes_stay_within_the_mutation_budget_and_coalesce_per_object()
    {
        await using var server = await KubeApiServer.StartAsync();
        const int objects = 24;
        for (var i = 0; i < objects; i++) server.Seed(Adapter($"a{i:D2}"));
        var options = FastOptions(o => { o.MutationsPerSecond = 40; o.MutationBurst = 4; o.ListPageSize = 500; });
        await using var home = await StartedHome(server, options, objects);
        server.ClearRequests();
        var declared = home.Current.Adapters.Select(d => d.Resource).ToList();

        // Many reconcile passes in quick succession: only the latest status of each object is written.
        var started = DateTime.UtcNow;
        for (var pass = 0; pass < 10; pass++)
            await home.WriteStatusAsync([.. declared.Select(d => WithStatus(d, Status(pass < 9 ? LoraAdapterPhases.Loading : LoraAdapterPhases.Ready, "x" + d.Metadata.Name)))], CancellationToken.None);
        await WaitUntilAsync(() => server.List<LoraAdapter>(Ns).All(a => a.Status?.Phase == LoraAdapterPhases.Ready), "every object Ready", seconds: 20);
        var elapsed = DateTime.UtcNow - started;

        var writes = server.Requests.Where(r => r.IsMutating && r.Subresource == "status").ToList();
        Assert.InRange(writes.Count, objects, 2 * objects); // at most one intermediate status per object, never one per pass
        // 40/s with a burst of 4: at least (writes - 4) / 40 seconds.
        Assert.True(elapsed >= TimeSpan.FromSeconds((writes.Count - 4) / 40.0 * 0.9), $"{writes.Count} writes took {elapsed}");
    }

    [Fact]
    public async Task A_first_status_or_a_new_phase_is_urgent_a_change_within_the_phase_is_not()
    {
        await using var server = await KubeApiServer.StartAsync();
        server.Seed(Adapter("sql"));
        await using var home = await StartedHome(server);
        var declared = home.Current.Adapters.Single().Resource;
        Assert.True(home.Urgent($"{Ns}/sql", Status(LoraAdapterPhases.Loading)));

        await home.WriteStatusAsync([WithStatus(declared, Status(LoraAdapterPhases.Loading))], CancellationToken.None);
        await WaitUntilAsync(() => home.AdapterInformer.Objects.TryGetValue($"{Ns}/sql", out var o) && o.TryGetProperty("status", out _), "the first status is cached");
        Assert.False(home.Urgent($"{Ns}/sql", Status(LoraAdapterPhases.Loading, "sql-v1")));
        Assert.True(home.Urgent($"{Ns}/sql", Status(LoraAdapterPhases.Ready, "sql-v1")));
        Assert.False(home.Urgent($"{Ns}/gone", Status(LoraAdapterPhases.Ready)));
    }

    [Fact]
    public async Task First_statuses_are_not_held_up_behind_every_other_objects_finalizer()
    {
        await using var server = await KubeApiServer.StartAsync();
        const int objects = 8;
        for (var i = 0; i < objects; i++) server.Seed(Adapter($"a{i}"));
        await using var home = Home(server, FastOptions(o => { o.MutationsPerSecond = 10; o.MutationBurst = 1; }));
        await home.StartAsync(CancellationToken.None);
        await WaitUntilAsync(() => home.Synced && home.Current.Adapters.Count == objects, "the first picture");
        await home.WriteStatusAsync([.. home.Current.Adapters.Select(d => WithStatus(d.Resource, Status(LoraAdapterPhases.Ready, d.Resource.Metadata.Name + "-v1")))], CancellationToken.None);
        await WaitUntilAsync(() => server.List<LoraAdapter>(Ns).All(a => a.Metadata.Finalizers?.Count == 1 && a.Status?.Phase == LoraAdapterPhases.Ready), "all written", seconds: 20);

        var order = server.Requests.Where(r => r.IsMutating && r.Resource == "loraadapters").ToList();
        var lastStatus = order.FindLastIndex(r => r.Subresource == "status");
        var finalizersBefore = order.Take(lastStatus).Count(r => r.Subresource is null);
        // Without priority all 8 finalizers go first; with it only those already under way when the statuses came.
        Assert.True(finalizersBefore <= 2, string.Join(", ", order.Select(r => $"{r.Name}/{r.Subresource ?? "main"}")));
        Assert.Equal(objects, order.Count(r => r.Subresource is null));
    }

    [Fact]
    public async Task A_follower_writes_nothing()
    {
        await using var server = await KubeApiServer.StartAsync();
        server.Seed(Adapter("sql"));
        var leadership = new ManualLeadership(isLeader: false);
        await using var home = Home(server, leadership: leadership);
        await home.StartAsync(CancellationToken.None);
        await WaitUntilAsync(() => home.InformersSynced && home.Current.Adapters.Count == 1, "the informers synced");
        Assert.True(home.Synced); // followers decide (for their routing tables) by default, but write nothing
        await home.WriteStatusAsync([WithStatus(home.Current.Adapters[0].Resource, Status(LoraAdapterPhases.Ready, "x"))], CancellationToken.None);
        await Task.Delay(200);
        Assert.DoesNotContain(server.Requests, r => r.IsMutating);

        leadership.Set(true);
        await WaitUntilAsync(() => home.Synced, "leading");
        await WaitUntilAsync(() => server.Get<LoraAdapter>(Ns, "sql")!.Metadata.Finalizers?.Count == 1, "the new leader adds the finalizer");
        // What it queued as a follower is not written; its first own pass is.
        Assert.Null(server.Get<LoraAdapter>(Ns, "sql")!.Status);
        await home.WriteStatusAsync([WithStatus(home.Current.Adapters[0].Resource, Status(LoraAdapterPhases.Ready, "x"))], CancellationToken.None);
        await WaitUntilAsync(() => server.Get<LoraAdapter>(Ns, "sql")!.Status?.Phase == LoraAdapterPhases.Ready, "the leader writes");
    }

    [Fact]
    public async Task With_ReconcileOnFollowers_a_follower_is_synced_for_routing_but_still_writes_nothing()
    {
        await using var server = await KubeApiServer.StartAsync();
        server.Seed(Adapter("sql"));
        await using var home = Home(server, FastOptions(o => o.ReconcileOnFollowers = true), new ManualLeadership(isLeader: false));
        await home.StartAsync(CancellationToken.None);
        await WaitUntilAsync(() => home.Synced && home.Current.Adapters.Count == 1, "synced as a follower");
        Assert.False(home.IsLeader);
        await home.WriteStatusAsync([WithStatus(home.Current.Adapters[0].Resource, Status(LoraAdapterPhases.Ready, "x"))], CancellationToken.None);
        await Task.Delay(200);
        Assert.DoesNotContain(server.Requests, r => r.IsMutating);
    }

    [Fact]
    public async Task After_a_start_a_pass_that_began_before_every_sidecar_reported_is_not_recorded()
    {
        await using var server = await KubeApiServer.StartAsync();
        server.Seed(Adapter("sql"));
        var residency = new FakeResidency { AllReported = false };
        await using var home = Home(server, residency: residency);
        await home.StartAsync(CancellationToken.None);
        await WaitUntilAsync(() => home.Synced && home.Current.Adapters.Count == 1, "the first picture");
        await WaitUntilAsync(() => server.Get<LoraAdapter>(Ns, "sql")!.Metadata.Finalizers?.Count == 1, "finalizer");
        var changed = 0;
        home.Changed += () => Interlocked.Increment(ref changed);

        // A pass that starts while the sidecars have not reported yet: its (half-picture) status is dropped.
        var declared = home.Current.Adapters[0].Resource;
        await home.WriteStatusAsync([WithStatus(declared, Status(LoraAdapterPhases.Pending))], CancellationToken.None);
        await Task.Delay(150);
        Assert.Null(server.Get<LoraAdapter>(Ns, "sql")!.Status);

        // The sidecars report: the home asks for a fresh pass, and that pass is recorded.
        residency.Report();
        await WaitUntilAsync(() => changed >= 1, "a fresh pass was requested");
        declared = home.Current.Adapters[0].Resource;
        await home.WriteStatusAsync([WithStatus(declared, Status(LoraAdapterPhases.Ready, "sql-v1"))], CancellationToken.None);
        await WaitUntilAsync(() => server.Get<LoraAdapter>(Ns, "sql")!.Status?.Phase == LoraAdapterPhases.Ready, "recorded");
        Assert.Equal(1, StatusWrites(server));
    }

    [Fact]
    public async Task Without_reports_statuses_are_recorded_after_the_settle_timeout()
    {
        await using var server = await KubeApiServer.StartAsync();
        server.Seed(Adapter("sql"));
        var residency = new FakeResidency { AllReported = false };
        await using var home = Home(server, FastOptions(o => o.StatusSettleTimeout = TimeSpan.FromMilliseconds(600)), residency: residency);
        var started = DateTime.UtcNow;
        await home.StartAsync(CancellationToken.None);
        await WaitUntilAsync(() => home.Synced && home.Current.Adapters.Count == 1, "the first picture");
        // The reconciler passes again and again; none is recorded before the timeout, one is after it.
        await WaitUntilAsync(async () =>
        {
            await home.WriteStatusAsync([WithStatus(home.Current.Adapters[0].Resource, Status(LoraAdapterPhases.Pending))], CancellationToken.None);
            await Task.Delay(20);
            return server.Get<LoraAdapter>(Ns, "sql")!.Status?.Phase == LoraAdapterPhases.Pending;
        }, "recorded after the timeout");
        Assert.True(DateTime.UtcNow - started >= TimeSpan.FromMilliseconds(550), $"recorded after {DateTime.UtcNow - started}");
    }
}
