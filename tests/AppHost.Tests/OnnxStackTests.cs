using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Aspire.Hosting;
using Aspire.Hosting.Testing;
using HybridServing.Contracts.Peft;
using HybridServing.TestKit;
using TempDirectory = HybridServing.TestKit.TempDirectory;

namespace HybridServing.AppHost.Tests;

/// <summary>
/// The stack on the ONNX backend (<c>--mock-backend onnx</c>), started through Aspire.Hosting.Testing and
/// used through the gateway only: sidecars, ControlPlane and Gateway treat the computing engines as they
/// treat the performance model, and the adapters they place change what the engines answer.
/// </summary>
[Collection(AppHostStack.Name)]
public sealed class OnnxStackTests : IAsyncLifetime
{
    private const string ApiKey = "onnx-tenant-key";
    private readonly TempDirectory _dir = new("onnx-stack");
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };
    private DistributedApplication? _app;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
        _http.Dispose();
        _dir.Dispose();
    }

    [Fact]
    public async Task Adapters_placed_by_the_control_plane_change_the_answers_the_same_way_on_every_engine()
    {
        var adapters = _dir.Combine("adapters");
        var tiny = BaseModelShape.For(TestAdapters.TinyModel);
        PeftAdapterWriter.Write(Path.Combine(adapters, "onnx-a"), tiny, 8, ["q_proj", "v_proj"], seed: 11, trained: true);
        PeftAdapterWriter.Write(Path.Combine(adapters, "onnx-b"), tiny, 8, ["q_proj", "v_proj"], seed: 12, trained: true);
        PeftAdapterWriter.Write(Path.Combine(adapters, "onnx-zero"), tiny, 8, ["q_proj", "v_proj"], seed: 13, trained: false);
        var manifests = Directory.CreateDirectory(_dir.Combine("manifests")).FullName;
        // Two replicas of each adapter: one on each engine, so one adapter's answers can be compared across engines.
        await File.WriteAllTextAsync(Path.Combine(manifests, "onnx.yaml"), $"""
            apiVersion: hybridserving.io/v1alpha1
            kind: LoraAdapter
            metadata:
              name: onnx
              namespace: default
            spec:
              baseModel: {TestAdapters.TinyModel}
              adapterSource:
                type: local
                repository: {adapters}
                pattern: "onnx-*"
              deploymentConfig:
                replicas:
                  min: 2
                  max: 2
            """);

        var block = Ports.GetFreeBlock(4);
        string[] args = [
            "--mock-backend", "onnx", "--manifests", manifests, "--adapter-root", adapters, "--engines", "2",
            "--autoscaler-min-engines", "2", "--base-model", TestAdapters.TinyModel,
            "--gateway-port", Ports.GetFree().ToString(), "--controlplane-port", Ports.GetFree().ToString(),
            "--controlplane-grpc-port", Ports.GetFree().ToString(), "--autoscaler-port", Ports.GetFree().ToString(),
            "--engine-port-base", block.ToString(), "--sidecar-port-base", (block + 2).ToString(),
            "--state-dir", _dir.Combine("state")];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(180));
        var appHost = await DistributedApplicationTestingBuilder.CreateAsync<Projects.AppHost>(args, timeout.Token);
        appHost.Configuration["Parameters:dev-api-key"] = ApiKey;
        _app = await appHost.BuildAsync(timeout.Token);
        await _app.StartAsync(timeout.Token);
        foreach (var name in new[] { "engine-0", "engine-1", "engine-0-sidecar", "engine-1-sidecar", "controlplane", "gateway" })
            await _app.ResourceNotifications.WaitForResourceHealthyAsync(name, timeout.Token);
        var status = new Uri(_app.GetEndpoint("controlplane", "http"), "/apis/hybridserving.io/v1alpha1/namespaces/default/loraadapters/onnx");
        await Eventually.ValueAsync(async () =>
        {
            var json = JsonNode.Parse(await _http.GetStringAsync(status, timeout.Token))!;
            return (string?)json["status"]?["phase"] == "Ready" ? json : null;
        }, timeout.Token);

        var gateway = _app.GetEndpoint("gateway", "http");
        var baseAnswer = await AnswerAsync(gateway, TestAdapters.TinyModel, timeout.Token);
        var a = await AnswerAsync(gateway, "onnx-a", timeout.Token);
        var b = await AnswerAsync(gateway, "onnx-b", timeout.Token);
        var zero = await AnswerAsync(gateway, "onnx-zero", timeout.Token);

        Assert.NotEqual(baseAnswer.Text, a.Text);
        Assert.NotEqual(a.Text, b.Text);
        Assert.Equal(baseAnswer.Text, zero.Text);   // lora_B all zeros: exactly the base model's tokens

        // Greedy decoding is the same on every engine: ask until both engines have answered for onnx-a.
        var byEngine = new Dictionary<string, string> { [a.Engine] = a.Text };
        for (var i = 0; i < 40 && byEngine.Count < 2; i++)
        {
            var again = await AnswerAsync(gateway, "onnx-a", timeout.Token);
            byEngine.TryAdd(again.Engine, again.Text);
            Assert.Equal(a.Text, again.Text);
        }
        Assert.Equal(2, byEngine.Count);
    }

    private async Task<(string Text, string Engine)> AnswerAsync(Uri gateway, string model, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(gateway, "/v1/chat/completions"))
        {
            Content = JsonContent.Create(new
            {
                model,
                temperature = 0,
                max_tokens = 12,
                messages = new[] { new { role = "user", content = "Where is my parcel?" } },
            }),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", ApiKey);
        using var response = await _http.SendAsync(request, cancellationToken);
        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        var text = (string?)JsonNode.Parse(body)!["choices"]![0]!["message"]!["content"];
        Assert.False(string.IsNullOrEmpty(text), body);
        return (text!, response.Headers.GetValues("x-hybridserving-engine").Single());
    }
}
