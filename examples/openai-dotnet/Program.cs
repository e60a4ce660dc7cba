// The official OpenAI .NET SDK, unchanged, against the HybridServing gateway. OPENAI_BASE_URL and OPENAI_API_KEY
// default to the local stack's (dotnet run --project AppHost).
using System.ClientModel;
using OpenAI;
using OpenAI.Chat;

var baseUrl = Environment.GetEnvironmentVariable("OPENAI_BASE_URL") ?? "http://127.0.0.1:8080/v1";
var apiKey = Environment.GetEnvironmentVariable("OPENAI_API_KEY") ?? "dev-key";
var model = Environment.GetEnvironmentVariable("MODEL") ?? "sql-lora";

var chat = new ChatClient(model, new ApiKeyCredential(apiKey), new OpenAIClientOptions { Endpoint = new Uri(baseUrl) });
var options = new ChatCompletionOptions { MaxOutputTokenCount = 16 };
ChatMessage[] messages = [new UserChatMessage("Top 5 customers by revenue")];

// A chat completion; the raw response carries the header that names the engine that served it.
var result = await chat.CompleteChatAsync(messages, options);
ChatCompletion completion = result.Value;
Console.WriteLine($"chat: {completion.Content[0].Text}");
Console.WriteLine($"engine: {(result.GetRawResponse().Headers.TryGetValue("x-hybridserving-engine", out var engine) ? engine : "(none)")}");
Console.WriteLine($"usage: {completion.Usage.InputTokenCount} prompt + {completion.Usage.OutputTokenCount} completion tokens");

// The same, streamed.
var chunks = 0;
Console.Write("stream: ");
await foreach (var update in chat.CompleteChatStreamingAsync(messages, options))
{
    foreach (var part in update.ContentUpdate) Console.Write(part.Text);
    chunks++;
}
Console.WriteLine($"\nstreamed {chunks} chunks");
