using System.Globalization;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Time.Testing;
using static HybridServing.KubeApiTestServer.Tests.Objects;

namespace HybridServing.KubeApiTestServer.Tests;

public sealed class GracefulPodDeletionTests
{
    private static readonly DateTimeOffset Start = DateTimeOffset.Parse("2026-06-01T10:00:00Z", CultureInfo.InvariantCulture);

    [Fact]
    public async Task A_scheduled_pod_stays_Terminating_for_its_grace_period_then_goes()
    {
        var clock = new FakeTimeProvider(Start);
        await using var server = await KubeApiServer.StartAsync(new KubeApiServerOptions { TimeProvider = clock, GracefulPodDeletion = true });
        using var client = server.CreateClient();
        var pod = Pod("engine-0", node: "node-a");
        pod.Spec.TerminationGracePeriodSeconds = 20;
        var created = server.Seed(pod);
        await using var watch = new WatchCollector<V1Pod>((onError, ct) => client.CoreV1.WatchListNamespacedPodAsync(Ns, resourceVersion: created.Metadata.ResourceVersion, onError: onError, cancellationToken: ct));
        await server.WaitForWatchesAsync(1, TimeSpan.FromSeconds(5));

        var terminating = await client.CoreV1.DeleteNamespacedPodAsync("engine-0", Ns);

        Assert.Equal(Start.UtcDateTime.AddSeconds(20), terminating.Metadata.DeletionTimestamp);
        Assert.Equal(20, terminating.Metadata.DeletionGracePeriodSeconds);
        Assert.Single((await client.CoreV1.ListNamespacedPodAsync(Ns)).Items);
        Assert.Equal(WatchEventType.Modified, (await watch.NextAsync())!.Value.Type);

        clock.Advance(TimeSpan.FromSeconds(19));
        Assert.NotNull(server.Get<V1Pod>(Ns, "engine-0"));
        clock.Advance(TimeSpan.FromSeconds(1));

        Assert.Equal(WatchEventType.Deleted, (await watch.NextAsync())!.Value.Type);
        Assert.Null(server.Get<V1Pod>(Ns, "engine-0"));
    }

    [Fact]
    public async Task Grace_period_zero_unscheduled_pods_and_forced_deletes_go_at_once()
    {
        var clock = new FakeTimeProvider(Start);
        await using var server = await KubeApiServer.StartAsync(new KubeApiServerOptions { TimeProvider = clock, GracefulPodDeletion = true });
        using var client = server.CreateClient();
        server.Seed(Pod("now", node: "node-a"));
        server.Seed(Pod("unscheduled"));
        server.Seed(Pod("forced", node: "node-a"));

        await client.CoreV1.DeleteNamespacedPodAsync("now", Ns, gracePeriodSeconds: 0);
        await client.CoreV1.DeleteNamespacedPodAsync("unscheduled", Ns);
        var first = await client.CoreV1.DeleteNamespacedPodAsync("forced", Ns);
        await client.CoreV1.DeleteNamespacedPodAsync("forced", Ns, new V1DeleteOptions { GracePeriodSeconds = 0 });

        Assert.Equal(30, first.Metadata.DeletionGracePeriodSeconds);
        Assert.Empty(server.List<V1Pod>(Ns));
    }

    [Fact]
    public async Task Finalizers_hold_a_pod_after_its_grace_period_and_cannot_end_it_early()
    {
        var clock = new FakeTimeProvider(Start);
        await using var server = await KubeApiServer.StartAsync(new KubeApiServerOptions { TimeProvider = clock, GracefulPodDeletion = true });
        using var client = server.CreateClient();
        var pod = Pod("engine-0", node: "node-a");
        pod.Metadata.Finalizers = ["hybridserving.io/drain"];
        server.Seed(pod);

        await client.CoreV1.DeleteNamespacedPodAsync("engine-0", Ns, gracePeriodSeconds: 10);
        clock.Advance(TimeSpan.FromSeconds(10));
        var held = server.Get<V1Pod>(Ns, "engine-0");
        await client.CoreV1.PatchNamespacedPodAsync(new V1Patch("{\"metadata\":{\"finalizers\":null}}", V1Patch.PatchType.MergePatch), "engine-0", Ns);

        Assert.Equal(0, held!.Metadata.DeletionGracePeriodSeconds);
        Assert.Null(server.Get<V1Pod>(Ns, "engine-0"));

        server.Seed(pod);
        await client.CoreV1.DeleteNamespacedPodAsync("engine-0", Ns, gracePeriodSeconds: 10);
        await client.CoreV1.PatchNamespacedPodAsync(new V1Patch("{\"metadata\":{\"finalizers\":null}}", V1Patch.PatchType.MergePatch), "engine-0", Ns);
        Assert.NotNull(server.Get<V1Pod>(Ns, "engine-0"));
        clock.Advance(TimeSpan.FromSeconds(10));
        Assert.Null(server.Get<V1Pod>(Ns, "engine-0"));
    }
}
