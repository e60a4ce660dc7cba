using HybridServing.Contracts.Resources;
using HybridServing.ControlPlane.Kubernetes;
using HybridServing.KubeApiTestServer;
using k8s;
using k8s.Models;
using Microsoft.Extensions.Logging.Abstractions;
using static HybridServing.ControlPlane.Tests.Kubernetes.KubeHarness;

namespace HybridServing.ControlPlane.Tests.Kubernetes;

public sealed class ResourceInformerTests
{
    private static ResourceInformer Informer(KubeApiServer server, KubernetesHomeOptions? options = null) =>
        new("loraadapters", ApiFor(server), KubernetesHome.AdaptersPath, null, options ?? FastOptions(), TimeProvider.System, NullLogger.Instance);

    private static Task CreateAsync(k8s.Kubernetes client, LoraAdapter a) =>
        client.CustomObjects.CreateNamespacedCustomObjectAsync(a, LoraAdapter.Group, LoraAdapter.Version, a.Metadata.NamespaceProperty, LoraAdapter.Plural);

    [Fact]
    public async Task Lists_in_pages_then_watches_adds_updates_and_deletes()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        foreach (var n in new[] { "a", "b", "c" }) server.Seed(Adapter(n));
        await using var informer = Informer(server);
        var changes = 0;
        informer.Changed += () => Interlocked.Increment(ref changes);
        informer.Start();
        await WaitUntilAsync(() => informer.Synced, "the first list");

        Assert.Equal(["team-a/a", "team-a/b", "team-a/c"], informer.Objects.Keys.Order(StringComparer.Ordinal));
        // Page size 2: two list requests, the second with the continue token of the first.
        var lists = server.Requests.Where(r => r.Verb == "list" && r.Resource == "loraadapters").ToList();
        Assert.Equal(2, lists.Count);
        Assert.Contains("limit=2", lists[0].Query);
        Assert.Contains("continue=", lists[1].Query);
        await server.WaitForWatchesAsync(1, TimeSpan.FromSeconds(5));
        var watch = server.Requests.Single(r => r.Verb == "watch");
        Assert.Contains("allowWatchBookmarks=true", watch.Query);
        Assert.Contains("resourceVersion=", watch.Query);

        await CreateAsync(client, Adapter("d"));
        var b = server.Get<LoraAdapter>(Ns, "b")!;
        b.Spec.BaseModel = "other/model";
        await client.CustomObjects.ReplaceNamespacedCustomObjectAsync(b, LoraAdapter.Group, LoraAdapter.Version, Ns, LoraAdapter.Plural, "b");
        await client.CustomObjects.DeleteNamespacedCustomObjectAsync(LoraAdapter.Group, LoraAdapter.Version, Ns, LoraAdapter.Plural, "a");

        await WaitUntilAsync(() => informer.Objects.ContainsKey("team-a/d") && !informer.Objects.ContainsKey("team-a/a")
                                   && informer.Objects["team-a/b"].GetProperty("spec").GetProperty("baseModel").GetString() == "other/model",
            "the watch delivered the add, the update and the delete");
        Assert.Equal(1, informer.Lists);
        Assert.True(changes >= 4, $"Changed raised {changes} times");
    }

    [Fact]
    public async Task Gone_relists_and_misses_no_change_made_while_the_watch_was_down()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        foreach (var n in new[] { "keep", "edit", "drop" }) server.Seed(Adapter(n));
        await using var informer = Informer(server);
        informer.Start();
        await WaitUntilAsync(() => informer.Synced, "the first list");
        await server.WaitForWatchesAsync(1, TimeSpan.FromSeconds(5));

        // The watch goes down and cannot come back for a while; meanwhile the cluster changes and etcd compacts.
        var outage = server.InjectFault(new HybridServing.KubeApiTestServer.Faults.FaultRule("watch", "loraadapters", 1000) { StatusCode = 503 });
        server.AbortWatches();
        await CreateAsync(client, Adapter("new"));
        var edit = server.Get<LoraAdapter>(Ns, "edit")!;
        edit.Spec.BaseModel = "edited/model";
        await client.CustomObjects.ReplaceNamespacedCustomObjectAsync(edit, LoraAdapter.Group, LoraAdapter.Version, Ns, LoraAdapter.Plural, "edit");
        await client.CustomObjects.DeleteNamespacedCustomObjectAsync(LoraAdapter.Group, LoraAdapter.Version, Ns, LoraAdapter.Plural, "drop");
        await WaitUntilAsync(() => outage.Hits >= 1, "the informer tried to watch again");
        server.CompactHistory();
        server.ClearFaults();

        await WaitUntilAsync(() => informer.Lists == 2, "a re-list after 410 Gone");
        await WaitUntilAsync(() => informer.Objects.ContainsKey("team-a/new"), "the re-list applied");
        Assert.Equal(["team-a/edit", "team-a/keep", "team-a/new"], informer.Objects.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("edited/model", informer.Objects["team-a/edit"].GetProperty("spec").GetProperty("baseModel").GetString());

        // And it watches again from the new list's version: later changes still arrive.
        await CreateAsync(client, Adapter("after"));
        await WaitUntilAsync(() => informer.Objects.ContainsKey("team-a/after"), "a change after the re-list");
        Assert.Equal(2, informer.Lists);
    }

    [Fact]
    public async Task Dropped_watch_reconnects_from_the_last_version_without_listing_again()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        server.Seed(Adapter("a"));
        await using var informer = Informer(server);
        informer.Start();
        await WaitUntilAsync(() => informer.Synced, "the first list");
        await server.WaitForWatchesAsync(1, TimeSpan.FromSeconds(5));

        Assert.Equal(1, server.AbortWatches());
        await CreateAsync(client, Adapter("while-down"));
        await WaitUntilAsync(() => informer.Watches >= 2, "a second watch");
        await WaitUntilAsync(() => informer.Objects.ContainsKey("team-a/while-down"), "the change made while the watch was cut");

        Assert.Equal(1, server.CloseWatches());
        await WaitUntilAsync(() => informer.Watches >= 3, "a third watch after a clean close");
        await CreateAsync(client, Adapter("later"));
        await WaitUntilAsync(() => informer.Objects.ContainsKey("team-a/later"), "a change after the reconnect");
        Assert.Equal(1, informer.Lists);
    }

    [Fact]
    public async Task A_silent_watch_is_reopened_by_the_watchdog()
    {
        // No bookmarks, no changes: the stream says nothing at all.
        await using var server = await KubeApiServer.StartAsync(new KubeApiServerOptions { BookmarkInterval = TimeSpan.FromHours(1) });
        await using var informer = Informer(server, FastOptions(o => o.WatchdogTimeout = TimeSpan.FromMilliseconds(200)));
        informer.Start();
        await WaitUntilAsync(() => informer.Watches >= 3, "the watchdog reopened the silent watch twice");
        Assert.Equal(1, informer.Lists);
    }

    [Fact]
    public async Task Bookmarks_move_the_resume_point_so_compaction_does_not_force_a_relist()
    {
        await using var server = await KubeApiServer.StartAsync(new KubeApiServerOptions { BookmarkInterval = TimeSpan.FromHours(1) });
        using var client = server.CreateClient();
        server.Seed(Adapter("a"));
        await using var informer = Informer(server);
        informer.Start();
        await WaitUntilAsync(() => informer.Synced, "the first list");
        await server.WaitForWatchesAsync(1, TimeSpan.FromSeconds(5));

        // Other kinds move the cluster's resourceVersion; only a bookmark tells this informer.
        server.Seed(EnginePod("p1"));
        server.Seed(EnginePod("p2"));
        var before = informer.ResourceVersion;
        server.SendBookmarks();
        await WaitUntilAsync(() => informer.ResourceVersion == server.ResourceVersion.ToString(), "the bookmark advanced the resume point");
        Assert.NotEqual(before, informer.ResourceVersion);

        server.CompactHistory();
        server.CloseWatches();
        await WaitUntilAsync(() => informer.Watches >= 2, "the watch reopened");
        await CreateAsync(client, Adapter("b"));
        await WaitUntilAsync(() => informer.Objects.ContainsKey("team-a/b"), "a change on the reopened watch");
        Assert.Equal(1, informer.Lists);
    }

    [Fact]
    public async Task Api_errors_are_retried_with_backoff_until_the_list_succeeds()
    {
        await using var server = await KubeApiServer.StartAsync();
        server.Seed(Adapter("a"));
        var fault = server.FailNext("list", "loraadapters", 500, count: 3);
        await using var informer = Informer(server);
        informer.Start();
        await WaitUntilAsync(() => informer.Synced, "the list after three failures");
        Assert.Equal(3, fault.Hits);
        Assert.Single(informer.Objects);
    }
}
