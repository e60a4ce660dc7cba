using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using HybridServing.Contracts.Resources;
using HybridServing.KubeApiTestServer.Resources;
using k8s;
using k8s.Autorest;
using k8s.Models;
using static HybridServing.KubeApiTestServer.Tests.Objects;

namespace HybridServing.KubeApiTestServer.Tests;

public sealed class HookAndHttpShapeTests
{
    [Fact]
    public async Task Concurrent_read_modify_write_with_conflict_retry_loses_no_update()
    {
        await using var server = await KubeApiServer.StartAsync();
        server.Seed(ConfigMap("counter", data: new Dictionary<string, string> { ["n"] = "0" }));
        var conflicts = 0;

        async Task IncrementAsync()
        {
            using var client = server.CreateClient();
            for (var attempt = 0; ; attempt++)
            {
                var cm = await client.CoreV1.ReadNamespacedConfigMapAsync("counter", Ns);
                cm.Data["n"] = (int.Parse(cm.Data["n"], System.Globalization.CultureInfo.InvariantCulture) + 1).ToString(System.Globalization.CultureInfo.InvariantCulture);
                try
                {
                    await client.CoreV1.ReplaceNamespacedConfigMapAsync(cm, "counter", Ns);
                    return;
                }
                catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict && attempt < 100)
                {
                    Interlocked.Increment(ref conflicts);
                }
            }
        }

        await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(IncrementAsync)));

        Assert.Equal("8", server.Get<V1ConfigMap>(Ns, "counter")!.Data["n"]);
        Assert.Equal(conflicts, server.Requests.Count(r => r.Verb == "update" && r.StatusCode == 409));
    }

    [Fact]
    public async Task Validators_refuse_writes_with_422_like_a_CRD_schema_but_not_seeds()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        server.AddValidator<LoraAdapter>(a => AdapterSourceTypes.All.Contains(a.Spec.AdapterSource.Type)
            ? null
            : new FieldError("spec.adapterSource.type", $"Unsupported value: \"{a.Spec.AdapterSource.Type}\""));
        using var adapters = new GenericClient(client, LoraAdapter.Group, LoraAdapter.Version, LoraAdapter.Plural, disposeClient: false);
        var bad = new LoraAdapter { Metadata = new V1ObjectMeta { Name = "bad" }, Spec = new LoraAdapterSpec { AdapterSource = new AdapterSource { Type = "ftp" } } };

        var e = await ExpectStatus(HttpStatusCode.UnprocessableEntity, () => adapters.CreateNamespacedAsync(bad, Ns));
        Assert.Equal("LoraAdapter \"bad\" is invalid: spec.adapterSource.type: Unsupported value: \"ftp\"", Status(e).Message);
        Assert.Equal("spec.adapterSource.type", Status(e).Details.Causes[0].Field);

        bad.Metadata.NamespaceProperty = Ns;
        server.Seed(bad);
        await ExpectStatus(HttpStatusCode.UnprocessableEntity, () => adapters.PatchNamespacedAsync<LoraAdapter>(
            new V1Patch("{\"metadata\":{\"labels\":{\"a\":\"b\"}}}", V1Patch.PatchType.MergePatch), Ns, "bad"));
        await adapters.PatchNamespacedAsync<LoraAdapter>(new V1Patch("{\"spec\":{\"adapterSource\":{\"type\":\"local\"}}}", V1Patch.PatchType.MergePatch), Ns, "bad");
    }

    [Fact]
    public async Task Test_hooks_delete_through_normal_semantics_and_wait_for_state()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        server.Seed(new LoraAdapter { Metadata = new V1ObjectMeta { Name = "sql", NamespaceProperty = Ns, Finalizers = ["hybridserving.io/unload"] } });

        Assert.True(server.Delete<LoraAdapter>(Ns, "sql"));
        Assert.False(server.Delete<LoraAdapter>(Ns, "missing"));
        var terminating = server.Get<LoraAdapter>(Ns, "sql");
        Assert.NotNull(terminating!.Metadata.DeletionTimestamp);

        var waiting = server.WaitUntilAsync<LoraAdapter>(Ns, "sql", a => a is null, TimeSpan.FromSeconds(5));
        await client.CustomObjects.PatchNamespacedCustomObjectAsync(new V1Patch("{\"metadata\":{\"finalizers\":null}}", V1Patch.PatchType.MergePatch),
            LoraAdapter.Group, LoraAdapter.Version, Ns, LoraAdapter.Plural, "sql");
        Assert.Null(await waiting);
        await Assert.ThrowsAsync<TimeoutException>(() => server.WaitUntilAsync<LoraAdapter>(Ns, "sql", a => a is not null, TimeSpan.FromMilliseconds(50)));
    }

    [Fact]
    public async Task Raw_HTTP_shapes_match_a_real_server()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(server.Url) };
        server.Seed(ConfigMap("a"));

        async Task<(HttpStatusCode, JsonObject)> Send(HttpMethod method, string path, string? body = null, string contentType = "application/json")
        {
            using var request = new HttpRequestMessage(method, path);
            if (body is not null)
            {
                request.Content = new StringContent(body, Encoding.UTF8);
                request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(contentType);
            }

            using var response = await http.SendAsync(request);
            return (response.StatusCode, (JsonObject)JsonNode.Parse(await response.Content.ReadAsStringAsync())!);
        }

        var (noStatus, s1) = await Send(HttpMethod.Get, "/api/v1/namespaces/default/configmaps/a/status");
        var (unknownGroup, _) = await Send(HttpMethod.Get, "/apis/example.com/v1/namespaces/default/widgets");
        var (notAllowed, s3) = await Send(HttpMethod.Post, "/api/v1/namespaces/default/configmaps/a", "{}");
        var (badJson, s4) = await Send(HttpMethod.Post, "/api/v1/namespaces/default/configmaps", "{not json");
        var (wrongKind, s5) = await Send(HttpMethod.Post, "/api/v1/namespaces/default/configmaps", "{\"kind\":\"Secret\",\"metadata\":{\"name\":\"x\"}}");
        var (withRv, s6) = await Send(HttpMethod.Post, "/api/v1/namespaces/default/configmaps", "{\"metadata\":{\"name\":\"x\",\"resourceVersion\":\"5\"}}");
        var (apply, s7) = await Send(HttpMethod.Patch, "/api/v1/namespaces/default/configmaps/a", "{}", "application/apply-patch+yaml");
        var (badLimit, _) = await Send(HttpMethod.Get, "/api/v1/namespaces/default/configmaps?limit=ten");
        var (ok, list) = await Send(HttpMethod.Get, "/api/v1/configmaps");

        Assert.Equal(HttpStatusCode.NotFound, noStatus);
        Assert.Equal("Status", s1["kind"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.NotFound, unknownGroup);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, notAllowed);
        Assert.Equal(405, s3["code"]!.GetValue<int>());
        Assert.Equal(HttpStatusCode.BadRequest, badJson);
        Assert.Contains("not valid JSON", s4["message"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.BadRequest, wrongKind);
        Assert.Contains("kind in the data (Secret)", s5["message"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.BadRequest, withRv);
        Assert.Equal("resourceVersion should not be set on objects to be created", s6["message"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, apply);
        Assert.Contains("server-side apply", s7["message"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.BadRequest, badLimit);
        Assert.Equal(HttpStatusCode.OK, ok);
        Assert.Equal("ConfigMapList", list["kind"]!.GetValue<string>());
    }

    [Fact]
    public async Task The_legacy_watch_path_watches_one_object()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(server.Url) };
        server.Seed(ConfigMap("a"));
        server.Seed(ConfigMap("b"));

        using var response = await http.GetAsync("/api/v1/watch/namespaces/default/configmaps/b", HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var line = await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(5));

        var evt = JsonNode.Parse(line!)!;
        Assert.Equal("ADDED", evt["type"]!.GetValue<string>());
        Assert.Equal("b", evt["object"]!["metadata"]!["name"]!.GetValue<string>());
        Assert.Equal("application/json", response.Content.Headers.ContentType!.MediaType);
    }

    [Fact]
    public async Task Cluster_scoped_resources_and_registered_custom_resources()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        server.Resources.Register(new ApiResource("example.com", "v1", "widgets", "Widget", Namespaced: false, HasStatusSubresource: false) { IsCustom = true, ReturnsDeletedObject = true });

        var node = await client.CoreV1.CreateNodeAsync(new V1Node { Metadata = new V1ObjectMeta { Name = "node-a", Labels = new Dictionary<string, string> { ["gpu"] = "a100" } } });
        var widget = await client.CustomObjects.CreateClusterCustomObjectAsync(new { apiVersion = "example.com/v1", kind = "Widget", metadata = new { name = "w" } }, "example.com", "v1", "widgets");

        Assert.Null(node.Metadata.NamespaceProperty);
        Assert.Single((await client.CoreV1.ListNodeAsync(labelSelector: "gpu=a100")).Items);
        Assert.Contains("\"name\":\"w\"", KubernetesJson.Serialize(widget));
        await ExpectStatus(HttpStatusCode.NotFound, () => client.CoreV1.ReadNamespacedPodAsync("node-a", "node-a"));
    }
}
