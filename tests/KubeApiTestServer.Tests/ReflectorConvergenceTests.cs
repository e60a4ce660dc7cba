using System.Collections.Concurrent;
using System.Globalization;
using k8s;
using k8s.Autorest;
using k8s.Models;
using static HybridServing.KubeApiTestServer.Tests.Objects;

namespace HybridServing.KubeApiTestServer.Tests;

/// <summary>
/// The semantics together: a list-then-watch cache, written against while history is compacted and
/// watches are closed or cut, must end up equal to the server's state (no missed change).
/// </summary>
public sealed class ReflectorConvergenceTests
{
    [Fact]
    public async Task A_list_then_watch_cache_converges_through_410s_and_dropped_watches()
    {
        // Reconnects are held back by injected latency on a fake clock, so the test decides exactly
        // which writes happen while the reflector is disconnected.
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        await using var server = await KubeApiServer.StartAsync(new KubeApiServerOptions { TimeProvider = clock, WatchHistoryCapacity = 200, BookmarkInterval = TimeSpan.FromMilliseconds(500) });
        using var reader = server.CreateClient();
        using var writer = server.CreateClient();
        using var stop = new CancellationTokenSource();
        var cache = new ConcurrentDictionary<string, string>();
        var relists = 0;

        async Task<string> RelistAsync()
        {
            while (true)
            {
                try
                {
                    var items = new Dictionary<string, string>();
                    string? token = null;
                    V1ConfigMapList page;
                    do
                    {
                        page = await reader.CoreV1.ListNamespacedConfigMapAsync(Ns, limit: 7, continueParameter: token, cancellationToken: stop.Token);
                        foreach (var cm in page.Items)
                        {
                            items[cm.Metadata.Name] = cm.Metadata.ResourceVersion;
                        }

                        token = page.Metadata.ContinueProperty;
                    }
                    while (token is not null);

                    cache.Clear();
                    foreach (var (name, rv) in items)
                    {
                        cache[name] = rv;
                    }

                    Interlocked.Increment(ref relists);
                    return page.Metadata.ResourceVersion;
                }
                catch (HttpOperationException e) when ((int)e.Response.StatusCode == 410)
                {
                    // The snapshot behind the continue token was compacted: list again from the start.
                }
            }
        }

        var reflector = Task.Run(async () =>
        {
            var rv = await RelistAsync();
            while (!stop.IsCancellationRequested)
            {
                var gone = false;
                try
                {
                    await foreach (var (type, cm) in reader.CoreV1.WatchListNamespacedConfigMapAsync(
                                       Ns, resourceVersion: rv, allowWatchBookmarks: true,
                                       onError: e => gone |= e is KubernetesException { Status.Code: 410 }, cancellationToken: stop.Token))
                    {
                        switch (type)
                        {
                            case WatchEventType.Added or WatchEventType.Modified:
                                cache[cm.Metadata.Name] = cm.Metadata.ResourceVersion;
                                break;
                            case WatchEventType.Deleted:
                                cache.TryRemove(cm.Metadata.Name, out _);
                                break;
                        }

                        rv = cm.Metadata.ResourceVersion;
                    }
                }
                catch (Exception e) when (e is HttpRequestException or IOException)
                {
                    // A cut connection: resume from the last resourceVersion seen.
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    return;
                }

                if (gone)
                {
                    rv = await RelistAsync();
                }
            }
        });

        var random = new Random(1234);
        async Task WriteAsync(int op)
        {
            var name = "cm-" + random.Next(25).ToString(CultureInfo.InvariantCulture);
            var exists = server.Get<V1ConfigMap>(Ns, name) is not null;
            if (!exists)
            {
                await writer.CoreV1.CreateNamespacedConfigMapAsync(ConfigMap(name), Ns);
            }
            else if (random.Next(3) == 0)
            {
                await writer.CoreV1.DeleteNamespacedConfigMapAsync(name, Ns);
            }
            else
            {
                await writer.CoreV1.PatchNamespacedConfigMapAsync(new V1Patch("{\"data\":{\"op\":\"" + op + "\"}}", V1Patch.PatchType.MergePatch), name, Ns);
            }
        }

        await server.WaitForWatchesAsync(1, TimeSpan.FromSeconds(5));
        var op = 0;
        for (var round = 0; round < 10; round++)
        {
            for (var i = 0; i < 25; i++)
            {
                await WriteAsync(op++);
            }

            // Drop the watch and hold its reconnect back while writes go on: the resumed watch must
            // replay them from history, or (after a compaction) get 410 and re-list.
            var held = server.InjectFault(new Faults.FaultRule("watch", "configmaps", 1) { Delay = TimeSpan.FromSeconds(1) });
            _ = round % 2 == 0 ? server.CloseWatches() : server.AbortWatches();
            for (var i = 0; i < 5; i++)
            {
                await WriteAsync(op++);
            }

            if (round % 3 == 2)
            {
                server.CompactHistory();
            }

            await ReleaseAsync(held);
        }

        // Last, one more held-back reconnect while every object changes once: each of these changes
        // can only reach the cache through the resumed watch's replay.
        var last = server.InjectFault(new Faults.FaultRule("watch", "configmaps", 1) { Delay = TimeSpan.FromSeconds(1) });
        server.CloseWatches();
        foreach (var cm in server.List<V1ConfigMap>(Ns))
        {
            await writer.CoreV1.PatchNamespacedConfigMapAsync(new V1Patch("{\"data\":{\"op\":\"final\"}}", V1Patch.PatchType.MergePatch), cm.Metadata.Name, Ns);
        }

        await ReleaseAsync(last);

        async Task ReleaseAsync(Faults.FaultRule fault)
        {
            var until = DateTime.UtcNow.AddSeconds(5);
            while (fault.Hits == 0 && DateTime.UtcNow < until)
            {
                await Task.Delay(5);
            }

            clock.Advance(fault.Delay);
            await server.WaitForWatchesAsync(1, TimeSpan.FromSeconds(5));
        }

        var expected = server.List<V1ConfigMap>(Ns).ToDictionary(c => c.Metadata.Name, c => c.Metadata.ResourceVersion);
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (!cache.OrderBy(p => p.Key).SequenceEqual(expected.OrderBy(p => p.Key)) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        var watchRequests = server.Requests.Count(r => r.Verb == "watch");
        await stop.CancelAsync();
        server.AbortWatches();
        await reflector.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(expected.OrderBy(p => p.Key), cache.OrderBy(p => p.Key));
        Assert.Equal(4, relists); // the first list, then one per compaction (rounds 2, 5 and 8)
        Assert.Equal(15, watchRequests); // the first, 10 reconnects, 3 after re-lists, the final reconnect
    }
}
