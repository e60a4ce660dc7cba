using System.ClientModel;
using System.Net.Http.Json;
using HybridServing.Contracts.ControlPlane;
using HybridServing.Gateway.Tests.Hosts;
using HybridServing.TestKit;
using OpenAI;
using OpenAI.Chat;
using static HybridServing.Gateway.Tests.Hosts.Tables;

namespace HybridServing.Gateway.Tests;

/// <summary>The official OpenAI .NET client against the gateway in front of a real MockEngine holding a real PEFT adapter.</summary>
public sealed class OpenAiSdkTests
{
    [Fact]
    public async Task The_official_client_works_unchanged_streaming_and_not()
    {
        using var adapters = new TempDirectory("sdk");
        var path = TestAdapters.Write(adapters.Path, "sql-lora");
        await using var engine = await MockEngineHost.StartAsync("--model", TestAdapters.TinyModel, "--enable-lora", "--max-loras", "2");
        using (var http = new HttpClient { BaseAddress = engine.BaseUrl })
        {
            using var load = await http.PostAsJsonAsync("/v1/load_lora_adapter", new { lora_name = "sql-lora", lora_path = path });
            Assert.True(load.IsSuccessStatusCode, await load.Content.ReadAsStringAsync());
        }
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("mock-0", engine.BaseUrl)], Adapter("sql-lora", endpoints: ("mock-0", Residency.Loaded))));
        await using var gw = await GatewayHost.StartAsync(cp.Url, new Dictionary<string, string?>
        {
            ["Gateway:Tenancy:RequireApiKey"] = "true",
            ["Gateway:Tenants:0:Name"] = "dev",
            ["Gateway:Tenants:0:ApiKey"] = "dev-key",
            ["Gateway:Tenants:0:Namespaces:0"] = "default",
        });
        await gw.WaitForTableAsync(1);

        var options = new OpenAIClientOptions { Endpoint = new Uri(gw.Url, "/v1") };
        var client = new OpenAIClient(new ApiKeyCredential("dev-key"), options);

        var models = (await client.GetOpenAIModelClient().GetModelsAsync()).Value;
        Assert.Contains(models, m => m.Id == "sql-lora");
        Assert.Contains(models, m => m.Id == TestAdapters.TinyModel);

        var chat = client.GetChatClient("sql-lora");
        var completion = (await chat.CompleteChatAsync([new UserChatMessage("Say hello")], new ChatCompletionOptions { MaxOutputTokenCount = 8 })).Value;
        Assert.Equal("sql-lora", completion.Model);
        Assert.False(string.IsNullOrEmpty(completion.Content[0].Text));

        var streamed = new System.Text.StringBuilder();
        var updates = 0;
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage("Say hello")], new ChatCompletionOptions { MaxOutputTokenCount = 8 }))
        {
            updates++;
            foreach (var part in update.ContentUpdate) streamed.Append(part.Text);
        }
        Assert.True(updates > 1);
        Assert.False(string.IsNullOrEmpty(streamed.ToString()));

        var wrongKey = new OpenAIClient(new ApiKeyCredential("not-the-key"), options).GetChatClient("sql-lora");
        var denied = await Assert.ThrowsAsync<ClientResultException>(() => wrongKey.CompleteChatAsync([new UserChatMessage("hi")]));
        Assert.Equal(401, denied.Status);
        var unknown = await Assert.ThrowsAsync<ClientResultException>(() => client.GetChatClient("nope").CompleteChatAsync([new UserChatMessage("hi")]));
        Assert.Equal(404, unknown.Status);
    }
}
