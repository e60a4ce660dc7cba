using System.Diagnostics;
using System.Net;
using HybridServing.KubeApiTestServer.Faults;
using k8s;
using k8s.Models;
using static HybridServing.KubeApiTestServer.Tests.Objects;

namespace HybridServing.KubeApiTestServer.Tests;

public sealed class FaultAndLogTests
{
    [Fact]
    public async Task The_next_N_matching_requests_fail_and_have_no_effect()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        await client.CoreV1.CreateNamespacedPodAsync(Pod("p"), Ns);
        var fault = server.FailNext("patch", "pods/status", statusCode: 409, count: 2);
        var patch = new V1Patch("{\"status\":{\"phase\":\"Running\"}}", V1Patch.PatchType.MergePatch);

        // A plain pods patch does not match pods/status.
        await client.CoreV1.PatchNamespacedPodAsync(new V1Patch("{\"metadata\":{\"labels\":{\"a\":\"b\"}}}", V1Patch.PatchType.MergePatch), "p", Ns);
        var first = await ExpectStatus(HttpStatusCode.Conflict, () => client.CoreV1.PatchNamespacedPodStatusAsync(patch, "p", Ns));
        await ExpectStatus(HttpStatusCode.Conflict, () => client.CoreV1.PatchNamespacedPodStatusAsync(patch, "p", Ns));
        Assert.Null((await client.CoreV1.ReadNamespacedPodAsync("p", Ns)).Status);
        var third = await client.CoreV1.PatchNamespacedPodStatusAsync(patch, "p", Ns);

        Assert.Equal("Conflict", Status(first).Reason);
        Assert.Equal("Running", third.Status.Phase);
        Assert.Equal(2, fault.Hits);
        Assert.Equal(0, fault.Remaining);
        Assert.Equal(2, server.Requests.Count(r => r.Injected));
    }

    [Fact]
    public async Task Server_errors_and_scoped_faults()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        server.Seed(ConfigMap("a"));
        server.Seed(ConfigMap("b"));
        server.InjectFault(new FaultRule("get", "configmaps", 5) { StatusCode = 500, Name = "b", Message = "etcd is on fire" });

        await client.CoreV1.ReadNamespacedConfigMapAsync("a", Ns);
        var e = await ExpectStatus(HttpStatusCode.InternalServerError, () => client.CoreV1.ReadNamespacedConfigMapAsync("b", Ns));

        Assert.Equal("InternalError", Status(e).Reason);
        Assert.Equal("etcd is on fire", Status(e).Message);
        server.ClearFaults();
        await client.CoreV1.ReadNamespacedConfigMapAsync("b", Ns);
        Assert.Throws<ArgumentException>(() => server.FailNext("get", "configmaps", statusCode: 200));
    }

    [Fact]
    public async Task Latency_can_be_added_to_every_request_or_to_matching_ones()
    {
        var clock = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        await using var server = await KubeApiServer.StartAsync(new KubeApiServerOptions { TimeProvider = clock });
        using var client = server.CreateClient();
        server.InjectFault(new FaultRule("list", "*", 1) { Delay = TimeSpan.FromSeconds(10) });

        var slow = client.CoreV1.ListNamespacedPodAsync(Ns);
        await Task.Delay(200);
        Assert.False(slow.IsCompleted);
        await AdvanceUntilDoneAsync(clock, slow, TimeSpan.FromSeconds(10));

        server.RequestLatency = TimeSpan.FromSeconds(1);
        var delayed = client.CoreV1.ListNamespacedPodAsync(Ns);
        await Task.Delay(200);
        Assert.False(delayed.IsCompleted);
        await AdvanceUntilDoneAsync(clock, delayed, TimeSpan.FromSeconds(1));
    }

    /// <summary>
    /// Advances the fake clock by the injected delay until the request completes. On a loaded
    /// machine the request may reach the server's delay only after a first advance, so one
    /// advance is not enough; the request can never complete without one.
    /// </summary>
    private static async Task AdvanceUntilDoneAsync(Microsoft.Extensions.Time.Testing.FakeTimeProvider clock, Task request, TimeSpan delay)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (!request.IsCompleted)
        {
            clock.Advance(delay);
            await Task.WhenAny(request, Task.Delay(50, deadline.Token));
        }
        await request;
    }

    [Fact]
    public async Task The_request_log_records_verbs_paths_and_statuses_for_counting_writes()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        var clock = Stopwatch.StartNew();

        await client.CoreV1.CreateNamespacedConfigMapAsync(ConfigMap("a"), Ns);
        await client.CoreV1.ReadNamespacedConfigMapAsync("a", Ns);
        await client.CoreV1.ListNamespacedConfigMapAsync(Ns, labelSelector: "x=y");
        await client.CoreV1.PatchNamespacedConfigMapAsync(new V1Patch("{\"data\":{\"k\":\"2\"}}", V1Patch.PatchType.MergePatch), "a", Ns);
        await ExpectStatus(HttpStatusCode.NotFound, () => client.CoreV1.ReadNamespacedConfigMapAsync("b", Ns));
        await client.CoreV1.DeleteNamespacedConfigMapAsync("a", Ns);

        var log = server.Requests;
        Assert.Equal(["create", "get", "list", "patch", "get", "delete"], log.Select(r => r.Verb));
        Assert.Equal([201, 200, 200, 200, 404, 200], log.Select(r => r.StatusCode));
        Assert.Equal("/api/v1/namespaces/default/configmaps/a", log[1].Path);
        Assert.Contains("labelSelector=x%3Dy", log[2].Query);
        Assert.All(log, r => Assert.Equal("configmaps", r.Resource));
        Assert.Equal(3, log.Count(r => r.IsMutating));
        var perSecond = log.Where(r => r.IsMutating).GroupBy(r => r.Time.ToUnixTimeSeconds()).Max(g => g.Count());
        Assert.InRange(perSecond, 1, 3);
        server.ClearRequests();
        Assert.Empty(server.Requests);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task Discovery_documents_list_the_registered_resources()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();

        var groups = await client.Apis.GetAPIVersionsAsync();
        var resources = await client.CustomObjects.GetAPIResourcesAsync("hybridserving.io", "v1alpha1");
        var version = await client.Version.GetCodeAsync();

        Assert.Contains(groups.Groups, g => g.Name == "coordination.k8s.io");
        Assert.Contains(resources.Resources, r => r.Name == "loraadapters" && r.Kind == "LoraAdapter" && r.Namespaced);
        Assert.Contains(resources.Resources, r => r.Name == "loraadapters/status");
        Assert.Equal("1", version.Major);
    }
}
