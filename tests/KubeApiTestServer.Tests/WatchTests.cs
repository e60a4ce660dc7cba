using k8s;
using k8s.Models;
using static HybridServing.KubeApiTestServer.Tests.Objects;

namespace HybridServing.KubeApiTestServer.Tests;

public sealed class WatchTests
{
    private static WatchCollector<V1ConfigMap> Watch(Kubernetes client, string? resourceVersion, string? labelSelector = null, bool bookmarks = false, int? timeoutSeconds = null) =>
        new((onError, ct) => client.CoreV1.WatchListNamespacedConfigMapAsync(
            Ns, resourceVersion: resourceVersion, labelSelector: labelSelector, allowWatchBookmarks: bookmarks, timeoutSeconds: timeoutSeconds, onError: onError, cancellationToken: ct));

    [Fact]
    public async Task List_then_watch_misses_no_change()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        using var writer = server.CreateClient();
        await client.CoreV1.CreateNamespacedConfigMapAsync(ConfigMap("before"), Ns);

        var list = await client.CoreV1.ListNamespacedConfigMapAsync(Ns);

        // Changes between the list and the watch must be replayed from the list's resourceVersion.
        await writer.CoreV1.CreateNamespacedConfigMapAsync(ConfigMap("between"), Ns);
        await writer.CoreV1.PatchNamespacedConfigMapAsync(new V1Patch("{\"data\":{\"k\":\"changed\"}}", V1Patch.PatchType.MergePatch), "before", Ns);
        await using var watch = Watch(client, list.Metadata.ResourceVersion);
        await server.WaitForWatchesAsync(1, TimeSpan.FromSeconds(5));
        await writer.CoreV1.DeleteNamespacedConfigMapAsync("between", Ns);

        var events = new List<(WatchEventType, string)>();
        for (var i = 0; i < 3; i++)
        {
            var e = await watch.NextAsync();
            events.Add((e!.Value.Type, e.Value.Object.Metadata.Name));
        }

        Assert.Equal([(WatchEventType.Added, "between"), (WatchEventType.Modified, "before"), (WatchEventType.Deleted, "between")], events);
        Assert.Single(list.Items);
    }

    [Fact]
    public async Task Watch_without_a_resourceVersion_starts_with_the_current_objects()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        server.Seed(ConfigMap("a"));
        server.Seed(ConfigMap("b"));

        await using var watch = Watch(client, resourceVersion: null);

        Assert.Equal((WatchEventType.Added, "a"), await Next(watch));
        Assert.Equal((WatchEventType.Added, "b"), await Next(watch));
    }

    [Fact]
    public async Task Resource_versions_in_watch_events_increase_and_deleted_objects_carry_a_new_one()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        await using var watch = Watch(client, server.ResourceVersion.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await server.WaitForWatchesAsync(1, TimeSpan.FromSeconds(5));

        var created = await client.CoreV1.CreateNamespacedConfigMapAsync(ConfigMap("a"), Ns);
        await client.CoreV1.DeleteNamespacedConfigMapAsync("a", Ns);

        var added = (await watch.NextAsync())!.Value;
        var deleted = (await watch.NextAsync())!.Value;
        Assert.Equal(created.Metadata.ResourceVersion, added.Object.Metadata.ResourceVersion);
        Assert.Equal(WatchEventType.Deleted, deleted.Type);
        Assert.True(Rv(deleted.Object) > Rv(added.Object));
    }

    [Fact]
    public async Task After_compaction_an_old_resourceVersion_gets_410_and_a_relist_recovers()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        var list = await client.CoreV1.ListNamespacedConfigMapAsync(Ns);
        await client.CoreV1.CreateNamespacedConfigMapAsync(ConfigMap("missed"), Ns);
        server.CompactHistory();

        var errors = new List<Exception>();
        var stale = new List<(WatchEventType, V1ConfigMap)>();
        await foreach (var e in client.CoreV1.WatchListNamespacedConfigMapAsync(Ns, resourceVersion: list.Metadata.ResourceVersion, onError: errors.Add))
        {
            stale.Add(e);
        }

        // The server ends the stream after the ERROR event; KubernetesClient reports it through onError.
        Assert.Empty(stale);
        var gone = Assert.IsType<KubernetesException>(Assert.Single(errors));
        Assert.Equal(410, gone.Status.Code);
        Assert.Equal("Expired", gone.Status.Reason);
        Assert.StartsWith("too old resource version", gone.Status.Message);

        var relist = await client.CoreV1.ListNamespacedConfigMapAsync(Ns);
        Assert.Equal("missed", Assert.Single(relist.Items).Metadata.Name);
        await using var watch = Watch(client, relist.Metadata.ResourceVersion);
        await server.WaitForWatchesAsync(1, TimeSpan.FromSeconds(5));
        await client.CoreV1.CreateNamespacedConfigMapAsync(ConfigMap("after"), Ns);
        Assert.Equal((WatchEventType.Added, "after"), await Next(watch));
    }

    [Fact]
    public async Task A_bounded_history_expires_old_resource_versions_by_itself()
    {
        await using var server = await KubeApiServer.StartAsync(new KubeApiServerOptions { WatchHistoryCapacity = 3 });
        using var client = server.CreateClient();
        server.Seed(new V1Secret { Metadata = new V1ObjectMeta { Name = "first", NamespaceProperty = Ns } });
        var start = server.ResourceVersion;
        for (var i = 0; i < 5; i++)
        {
            server.Seed(ConfigMap("c" + i));
        }

        var errors = new List<Exception>();
        await foreach (var _ in client.CoreV1.WatchListNamespacedConfigMapAsync(Ns, resourceVersion: start.ToString(System.Globalization.CultureInfo.InvariantCulture), onError: errors.Add))
        {
            Assert.Fail("no event is expected from an expired resourceVersion");
        }

        Assert.Equal(410, Assert.IsType<KubernetesException>(Assert.Single(errors)).Status.Code);

        // The last three events are still there.
        await using var recent = Watch(client, (start + 2).ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal((WatchEventType.Added, "c2"), await Next(recent));
        Assert.Equal((WatchEventType.Added, "c3"), await Next(recent));
        Assert.Equal((WatchEventType.Added, "c4"), await Next(recent));
    }

    [Fact]
    public async Task Label_selected_watches_see_objects_enter_and_leave_the_selection()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        await using var watch = Watch(client, "0", labelSelector: "role=engine");
        await server.WaitForWatchesAsync(1, TimeSpan.FromSeconds(5));

        await client.CoreV1.CreateNamespacedConfigMapAsync(ConfigMap("a"), Ns);
        await client.CoreV1.PatchNamespacedConfigMapAsync(new V1Patch("{\"metadata\":{\"labels\":{\"role\":\"engine\"}}}", V1Patch.PatchType.MergePatch), "a", Ns);
        await client.CoreV1.PatchNamespacedConfigMapAsync(new V1Patch("{\"data\":{\"k\":\"2\"}}", V1Patch.PatchType.MergePatch), "a", Ns);
        await client.CoreV1.PatchNamespacedConfigMapAsync(new V1Patch("{\"metadata\":{\"labels\":{\"role\":\"gateway\"}}}", V1Patch.PatchType.MergePatch), "a", Ns);

        Assert.Equal((WatchEventType.Added, "a"), await Next(watch));
        Assert.Equal((WatchEventType.Modified, "a"), await Next(watch));
        Assert.Equal((WatchEventType.Deleted, "a"), await Next(watch));
    }

    [Fact]
    public async Task Bookmarks_carry_the_current_resourceVersion_when_allowed()
    {
        await using var server = await KubeApiServer.StartAsync(new KubeApiServerOptions { BookmarkInterval = TimeSpan.FromHours(1) });
        using var client = server.CreateClient();
        server.Seed(ConfigMap("a"));
        await using var withBookmarks = Watch(client, server.ResourceVersion.ToString(System.Globalization.CultureInfo.InvariantCulture), bookmarks: true);
        await using var without = Watch(client, server.ResourceVersion.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await server.WaitForWatchesAsync(2, TimeSpan.FromSeconds(5));
        server.Seed(new V1Secret { Metadata = new V1ObjectMeta { Name = "elsewhere", NamespaceProperty = Ns } });

        server.SendBookmarks();

        var bookmark = (await withBookmarks.NextAsync())!.Value;
        Assert.Equal(WatchEventType.Bookmark, bookmark.Type);
        Assert.Equal(server.ResourceVersion, Rv(bookmark.Object));
        await Assert.ThrowsAsync<TimeoutException>(() => without.NextAsync(TimeSpan.FromMilliseconds(200)));
    }

    [Fact]
    public async Task Bookmarks_arrive_periodically_on_the_server_clock()
    {
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        await using var server = await KubeApiServer.StartAsync(new KubeApiServerOptions { TimeProvider = clock, BookmarkInterval = TimeSpan.FromSeconds(30) });
        using var client = server.CreateClient();
        await using var watch = Watch(client, "0", bookmarks: true);
        await server.WaitForWatchesAsync(1, TimeSpan.FromSeconds(5));

        await Assert.ThrowsAsync<TimeoutException>(() => watch.NextAsync(TimeSpan.FromMilliseconds(100)));
        clock.Advance(TimeSpan.FromSeconds(30));

        Assert.Equal(WatchEventType.Bookmark, (await watch.NextAsync())!.Value.Type);
    }

    [Fact]
    public async Task TimeoutSeconds_ends_the_stream()
    {
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        await using var server = await KubeApiServer.StartAsync(new KubeApiServerOptions { TimeProvider = clock });
        using var client = server.CreateClient();
        server.Seed(ConfigMap("a"));
        await using var watch = Watch(client, "0", timeoutSeconds: 60);
        Assert.Equal((WatchEventType.Added, "a"), await Next(watch));

        clock.Advance(TimeSpan.FromSeconds(59));
        await Assert.ThrowsAsync<TimeoutException>(() => watch.NextAsync(TimeSpan.FromMilliseconds(100)));
        clock.Advance(TimeSpan.FromSeconds(1));

        await watch.Ended.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Null(await watch.NextAsync());
        Assert.Empty(watch.Errors);
    }

    [Fact]
    public async Task Closing_watches_ends_streams_and_aborting_them_is_an_error_for_the_client()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        server.Seed(ConfigMap("a"));
        await using var closed = Watch(client, "0");
        Assert.Equal((WatchEventType.Added, "a"), await Next(closed));

        Assert.Equal(1, server.CloseWatches());
        await closed.Ended.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Empty(closed.Errors);

        await using var aborted = Watch(client, "0");
        Assert.Equal((WatchEventType.Added, "a"), await Next(aborted));
        Assert.Equal(1, server.AbortWatches());
        await aborted.Ended.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.NotEmpty(aborted.Errors);
        Assert.Equal(0, server.OpenWatches);
    }

    [Fact]
    public async Task KubernetesClient_reports_a_watch_that_ends_before_its_first_event_as_an_error()
    {
        // KubernetesClient reads the first line of a watch before the call returns; a stream that
        // ends empty (a real server's timeout with no change does this too) surfaces through onError
        // as HttpRequestException(EndOfStreamException). Informers must treat it as a normal close.
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        await using var watch = Watch(client, server.ResourceVersion.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await server.WaitForWatchesAsync(1, TimeSpan.FromSeconds(5));

        server.CloseWatches();

        await watch.Ended.WaitAsync(TimeSpan.FromSeconds(5));
        var error = Assert.IsType<HttpRequestException>(Assert.Single(watch.Errors));
        Assert.IsType<EndOfStreamException>(error.InnerException);
    }

    [Fact]
    public async Task Cluster_wide_watches_see_every_namespace_and_namespaced_ones_only_theirs()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        await using var all = new WatchCollector<V1Pod>((onError, ct) => client.CoreV1.WatchListPodForAllNamespacesAsync(resourceVersion: "0", onError: onError, cancellationToken: ct));
        await using var mine = new WatchCollector<V1Pod>((onError, ct) => client.CoreV1.WatchListNamespacedPodAsync("team-a", resourceVersion: "0", onError: onError, cancellationToken: ct));
        await server.WaitForWatchesAsync(2, TimeSpan.FromSeconds(5));

        await client.CoreV1.CreateNamespacedPodAsync(Pod("x", ns: "team-b"), "team-b");
        await client.CoreV1.CreateNamespacedPodAsync(Pod("y", ns: "team-a"), "team-a");

        Assert.Equal("team-b/x", Key((await all.NextAsync())!.Value.Object));
        Assert.Equal("team-a/y", Key((await all.NextAsync())!.Value.Object));
        Assert.Equal("team-a/y", Key((await mine.NextAsync())!.Value.Object));
    }

    private static string Key(V1Pod pod) => pod.Metadata.NamespaceProperty + "/" + pod.Metadata.Name;

    private static async Task<(WatchEventType, string)> Next(WatchCollector<V1ConfigMap> watch)
    {
        var e = await watch.NextAsync() ?? throw new InvalidOperationException("the watch ended");
        return (e.Type, e.Object.Metadata.Name);
    }
}
