using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using HybridServing.Contracts.ControlPlane;
using HybridServing.Gateway.Demand;
using HybridServing.Gateway.Tests.Hosts;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;
using OpenAI.Chat;
using static HybridServing.Gateway.Tests.Hosts.Tables;

namespace HybridServing.Gateway.Tests.Tenancy;

/// <summary>
/// Tenant isolation seen through the official OpenAI .NET SDK: tenant A cannot list, call, cold-load or learn the
/// existence of tenant B's adapters. Every answer A gets about B's adapter is byte for byte the answer for a model
/// that does not exist (with the name swapped), with the same headers, and nothing reaches the engine or the ControlPlane.
/// </summary>
public sealed class TenantIsolationSdkTests
{
    private const string Absent = "no-such-lora";

    // B's adapters: loaded, cold (not on any engine: a call would cold-start it), behind an alias, rate limited.
    private static readonly string[] Foreign = ["b-lora", "b-cold", "b-alias", "b-limited"];

    [Fact]
    public async Task Tenant_A_cannot_list_call_load_or_detect_tenant_B_adapters()
    {
        await using var engine = await FakeEngine.StartAsync("e1", "a-lora", "b-lora", "b-limited");
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("e1", engine.Url)],
            Adapter("a-lora", "team-a", ("e1", Residency.Loaded)),
            Adapter("b-lora", "team-b", ("e1", Residency.Loaded)),
            Adapter("b-limited", "team-b", ("e1", Residency.Loaded)),
            Adapter("b-cold", "team-b")));
        await using var gw = await GatewayHost.StartAsync(cp.Url, new Dictionary<string, string?>
        {
            ["Gateway:Tenancy:RequireApiKey"] = "true",
            ["Gateway:Tenants:0:Name"] = "team-a",
            ["Gateway:Tenants:0:ApiKey"] = "key-a",
            ["Gateway:Tenants:0:Namespaces:0"] = "team-a",
            ["Gateway:Tenants:1:Name"] = "team-b",
            ["Gateway:Tenants:1:ApiKey"] = "key-b",
            ["Gateway:Tenants:1:Namespaces:0"] = "team-b",
            ["Gateway:Aliases:b-alias:b-lora"] = "100",
            ["Gateway:RateLimits:Adapters:b-limited"] = "1",
            ["Gateway:Load:ScrapeInterval"] = "00:00:00",
            ["Gateway:Demand:ReportInterval"] = "00:00:00",
            ["Gateway:ColdStart:Timeout"] = "00:00:02",
        });
        await gw.WaitForTableAsync(1);
        // No retries: the SDK would wait out a 429 and hide it.
        var options = new OpenAIClientOptions { Endpoint = new Uri(gw.Url, "/v1"), RetryPolicy = new ClientRetryPolicy(0) };
        var a = new OpenAIClient(new ApiKeyCredential("key-a"), options);
        var b = new OpenAIClient(new ApiKeyCredential("key-b"), options);

        // Listing: A sees its own adapter and the base model, nothing of B's (alias included).
        var listed = (await a.GetOpenAIModelClient().GetModelsAsync()).Value.Select(m => m.Id).ToList();
        Assert.Equal([Base, "a-lora"], listed);
        Assert.Contains("b-lora", (await b.GetOpenAIModelClient().GetModelsAsync()).Value.Select(m => m.Id));
        Assert.Contains("b-alias", (await b.GetOpenAIModelClient().GetModelsAsync()).Value.Select(m => m.Id));

        // The answers for a model that does not exist, to compare every foreign answer with.
        var absentGet = await FailureAsync(() => a.GetOpenAIModelClient().GetModelAsync(Absent));
        var absentChat = await FailureAsync(() => a.GetChatClient(Absent).CompleteChatAsync([new UserChatMessage("hi")]));
        var absentStream = await StreamFailureAsync(a.GetChatClient(Absent));
        Assert.All(new[] { absentGet, absentChat, absentStream }, f => Assert.Equal(404, f.Status));

        foreach (var name in Foreign)
        {
            // Twice each: the second would be 429 for b-limited if A's calls counted against B's adapter.
            for (var i = 0; i < 2; i++)
            {
                AssertSameAs(absentGet, await FailureAsync(() => a.GetOpenAIModelClient().GetModelAsync(name)), name);
                AssertSameAs(absentChat, await FailureAsync(() => a.GetChatClient(name).CompleteChatAsync([new UserChatMessage("hi")])), name);
                AssertSameAs(absentStream, await StreamFailureAsync(a.GetChatClient(name)), name);
            }
        }

        // Nothing of A's attempts reached the engine, asked the ControlPlane for a load, or counted as demand.
        Assert.DoesNotContain(engine.Received, r => r.Model.StartsWith("b-", StringComparison.Ordinal));
        Assert.Equal(0, cp.RequestLoads);
        Assert.Empty(gw.Services.GetRequiredService<DemandCounter>().Drain());

        // Positive controls: B calls its adapters (directly and through the alias); A calls its own.
        Assert.Equal("b-lora", (await b.GetChatClient("b-lora").CompleteChatAsync([new UserChatMessage("hi")])).Value.Model);
        Assert.Equal("b-lora", (await b.GetChatClient("b-alias").CompleteChatAsync([new UserChatMessage("hi")])).Value.Model);
        Assert.Equal("b-limited", (await b.GetChatClient("b-limited").CompleteChatAsync([new UserChatMessage("hi")])).Value.Model);
        Assert.Equal(429, (await FailureAsync(() => b.GetChatClient("b-limited").CompleteChatAsync([new UserChatMessage("hi")]))).Status);
        Assert.Equal("a-lora", (await a.GetChatClient("a-lora").CompleteChatAsync([new UserChatMessage("hi")])).Value.Model);

        // The legacy completions route answers alike (the SDK has no client for it).
        using var absentCompletion = await gw.Client.SendAsync(gw.Chat(Absent, apiKey: "key-a", path: "/v1/completions"));
        using var foreignCompletion = await gw.Client.SendAsync(gw.Chat("b-lora", apiKey: "key-a", path: "/v1/completions"));
        Assert.Equal(HttpStatusCode.NotFound, foreignCompletion.StatusCode);
        Assert.Equal((await absentCompletion.Content.ReadAsStringAsync()).Replace(Absent, "b-lora", StringComparison.Ordinal),
            await foreignCompletion.Content.ReadAsStringAsync());
    }

    private sealed record Failure(int Status, string Body, IReadOnlyList<string> Headers);

    private static async Task<Failure> FailureAsync<T>(Func<Task<ClientResult<T>>> call)
    {
        var e = await Assert.ThrowsAsync<ClientResultException>(call);
        return Describe(e);
    }

    private static async Task<Failure> StreamFailureAsync(ChatClient chat)
    {
        var e = await Assert.ThrowsAsync<ClientResultException>(async () =>
        {
            await foreach (var _ in chat.CompleteChatStreamingAsync([new UserChatMessage("hi")])) { }
        });
        return Describe(e);
    }

    private static Failure Describe(ClientResultException e)
    {
        var raw = e.GetRawResponse()!;
        // Header names and values, less the ones that differ between any two answers.
        var headers = raw.Headers.Where(h => h.Key is not ("Date" or "Content-Length"))
            .Select(h => $"{h.Key}: {h.Value}").Order(StringComparer.Ordinal).ToList();
        return new Failure(e.Status, raw.Content.ToString(), headers);
    }

    private static void AssertSameAs(Failure absent, Failure foreign, string name)
    {
        Assert.Equal(absent.Status, foreign.Status);
        Assert.Equal(absent.Body.Replace(Absent, name, StringComparison.Ordinal), foreign.Body);
        Assert.Equal(absent.Headers, foreign.Headers);
    }
}
