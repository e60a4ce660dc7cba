using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using HybridServing.AppHost.Topology;
using HybridServing.TestKit;
using Xunit.Abstractions;

namespace HybridServing.AppHost.Tests;

/// <summary>
/// Tier 3: the local stack started by the AppHost's own startup code (child processes, Aspire
/// environment variables, real HTTP and gRPC between them), driven the way a user drives it.
/// </summary>
public sealed class LocalStackEndToEndTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string EngineHeader = "x-hybridserving-engine";
    private readonly TempDirectory _dir = new("e2e");
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };
    private LocalStack? _stack;
    private volatile bool _finished;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        _finished = true;
        if (_stack is not null) await _stack.DisposeAsync();
        _http.Dispose();
        _dir.Dispose();
    }

    private void Log(string resource, string line)
    {
        if (_finished) return;
        try { output.WriteLine($"{resource,-13}| {line}"); }
        catch (InvalidOperationException) { }
    }

    [Fact]
    public async Task An_adapter_is_discovered_placed_loaded_served_and_unloaded_when_its_manifest_goes()
    {
        var adapters = _dir.Combine("adapters");
        TestAdapters.Write(adapters, "e2e-alpha", rank: 8);
        TestAdapters.Write(adapters, "e2e-beta", rank: 16);
        TestAdapters.Write(adapters, "other", rank: 8);
        var manifests = Directory.CreateDirectory(_dir.Combine("manifests")).FullName;
        var manifest = Path.Combine(manifests, "e2e.yaml");
        await File.WriteAllTextAsync(manifest, $"""
            apiVersion: hybridserving.io/v1alpha1
            kind: LoraAdapter
            metadata:
              name: e2e
              namespace: default
            spec:
              baseModel: {TestAdapters.TinyModel}
              adapterSource:
                type: local
                repository: {adapters}
                pattern: "e2e-*"
              deploymentConfig:
                replicas:
                  min: 1
                  max: 1
            """);

        var block = Ports.GetFreeBlock(14);
        var options = AppHostOptions.Parse([
            "--manifests", manifests, "--adapter-root", adapters, "--engines", "2", "--base-model", TestAdapters.TinyModel,
            "--gateway-port", Ports.GetFree().ToString(), "--controlplane-port", Ports.GetFree().ToString(),
            "--controlplane-grpc-port", Ports.GetFree().ToString(),
            "--engine-port-base", block.ToString(), "--sidecar-port-base", (block + 2).ToString(),
            "--state-dir", _dir.Combine("state")]);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        _stack = await LocalStack.StartAsync(options, Log, timeout.Token);

        var gateway = _stack.Endpoint(LocalTopology.GatewayName);
        var status = new Uri(_stack.Endpoint(LocalTopology.ControlPlaneName), "/apis/hybridserving.io/v1alpha1/namespaces/default/loraadapters/e2e");
        var resource = await EventuallyAsync(async () =>
        {
            var json = JsonNode.Parse(await _http.GetStringAsync(status, timeout.Token))!;
            return (string?)json["status"]?["phase"] == "Ready" ? json : null;
        }, timeout.Token);
        Assert.Equal(["e2e-alpha", "e2e-beta"], resource["status"]!["loadedAdapters"]!.AsArray().Select(n => (string)n!).Order());

        // The gateway lists the base model and the loaded adapters with the base as parent.
        var models = await SendAsync(HttpMethod.Get, new Uri(gateway, "/v1/models"), null, timeout.Token);
        Assert.Equal(HttpStatusCode.OK, models.StatusCode);
        var cards = JsonNode.Parse(await models.Content.ReadAsStringAsync(timeout.Token))!["data"]!.AsArray();
        Assert.Contains(cards, c => (string?)c!["id"] == TestAdapters.TinyModel);
        Assert.Contains(cards, c => (string?)c!["id"] == "e2e-alpha" && (string?)c!["parent"] == TestAdapters.TinyModel);
        Assert.DoesNotContain(cards, c => (string?)c!["id"] == "other");

        // Non-streaming: served by an engine that holds the adapter.
        var response = await SendAsync(HttpMethod.Post, new Uri(gateway, "/v1/chat/completions"),
            new { model = "e2e-alpha", messages = new[] { new { role = "user", content = "Hello there" } }, max_tokens = 8 }, timeout.Token);
        var body = await response.Content.ReadAsStringAsync(timeout.Token);
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        Assert.Equal("e2e-alpha", (string?)JsonNode.Parse(body)!["model"]);
        var engine = Assert.Single(response.Headers.GetValues(EngineHeader));
        await AssertEngineHoldsAsync(engine, "e2e-alpha", timeout.Token);

        // Streaming: server-sent events passed through, ending with [DONE].
        var stream = await SendAsync(HttpMethod.Post, new Uri(gateway, "/v1/chat/completions"),
            new { model = "e2e-beta", stream = true, messages = new[] { new { role = "user", content = "Stream please" } }, max_tokens = 8 }, timeout.Token);
        Assert.Equal(HttpStatusCode.OK, stream.StatusCode);
        Assert.Equal("text/event-stream", stream.Content.Headers.ContentType?.MediaType);
        var events = await stream.Content.ReadAsStringAsync(timeout.Token);
        Assert.Contains("\"model\":\"e2e-beta\"", events);
        Assert.EndsWith("data: [DONE]\n\n", events);
        await AssertEngineHoldsAsync(Assert.Single(stream.Headers.GetValues(EngineHeader)), "e2e-beta", timeout.Token);

        // Removing the manifest unloads the adapters everywhere; the gateway then answers 404.
        File.Delete(manifest);
        var notFound = await EventuallyAsync(async () =>
        {
            var r = await SendAsync(HttpMethod.Post, new Uri(gateway, "/v1/chat/completions"),
                new { model = "e2e-alpha", messages = new[] { new { role = "user", content = "Hi" } } }, timeout.Token);
            return r.StatusCode == HttpStatusCode.NotFound ? await r.Content.ReadAsStringAsync(timeout.Token) : null;
        }, timeout.Token);
        var error = JsonNode.Parse(notFound)!["error"]!;
        Assert.Equal("NotFoundError", (string?)error["type"]);
        Assert.Equal("model", (string?)error["param"]);
        await EventuallyAsync(async () =>
        {
            foreach (var e in _stack.Resources.Where(r => r.Project == "MockEngine"))
            {
                var list = await _http.GetStringAsync(new Uri(e.Endpoints[0].Url, "/v1/models"), timeout.Token);
                if (list.Contains("e2e-alpha", StringComparison.Ordinal)) return (string?)null;
            }
            return "gone";
        }, timeout.Token);
    }

    private async Task AssertEngineHoldsAsync(string engine, string adapter, CancellationToken cancellationToken)
    {
        var url = _stack!.Endpoint(engine);
        var list = JsonNode.Parse(await _http.GetStringAsync(new Uri(url, "/v1/models"), cancellationToken))!["data"]!.AsArray();
        Assert.Contains(list, c => (string?)c!["id"] == adapter);
    }

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, Uri uri, object? body, CancellationToken cancellationToken)
    {
        var request = new HttpRequestMessage(method, uri);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", LocalStack.DevApiKey);
        if (body is not null)
            request.Content = new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");
        return await _http.SendAsync(request, cancellationToken);
    }

    private static async Task<T> EventuallyAsync<T>(Func<Task<T?>> probe, CancellationToken cancellationToken) where T : class
    {
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                if (await probe() is { } value) return value;
            }
            catch (HttpRequestException)
            {
            }
            await Task.Delay(200, cancellationToken);
        }
    }
}
